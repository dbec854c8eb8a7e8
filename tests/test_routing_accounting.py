"""``model: "auto"``: what a climb is charged, whatever its end: the daily budget held rung by
rung (never overrun), and the ledger row of a request that failed or whose client left after
some rungs ran (their tokens and energy, every rung tried in the route).

The real gateway in process, three fake rungs (``FakeBackend``, scripted per question), a
``FakeClock``, ``FakeMeter``s of fixed energy: 1 mWh a generation, 0.1 mWh a reuse lookup.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from boundgate.assembly import build_app
from boundgate.backends.base import GenerationRequest, Message
from boundgate.backends.fake import FakeBackend
from boundgate.clock import FakeClock
from boundgate.energy import FakeMeter
from boundgate.errors import (
    ErrorCode,
    InvalidRequestError,
    RateLimitError,
    ServiceUnavailableError,
)
from boundgate.gateway import Gateway
from boundgate.gateway.context import estimated_prompt_tokens
from boundgate.settings import load_settings
from boundgate.store import LedgerRow
from boundgate.tenants import Tenant
from helpers import arun, row_of, used_today, write_config

MAX_TOKENS = 16  # limits.default_max_tokens: every rung's answer is cut there
GEN_WH, LOOKUP_WH = 0.001, 0.0001
LOOPING = "Loop forever please."  # every rung runs into the default limit
FAILING = "Loop, then fail."  # the small rung loops, the upper rungs fail with 503

CONFIG = """
[server]
data_dir = "{data}"
grid_zone = "DE-LU"

[limits]
default_max_tokens = {max_tokens}

[reuse]
embedder = "hash"
scorer = "cosine"

[routing.ladders]
default = ["small", "medium", "large"]

[models.small]
backend = "fake"
default = true
params_b = 0.135

[models.medium]
backend = "fake"
params_b = 8

[models.large]
backend = "fake"
params_b = 70
"""


def answers(name: str) -> Callable[[str], str]:
    def say(question: str) -> str:
        if question == FAILING and name != "small":
            raise ServiceUnavailableError(f"{name} is down")
        return " ".join([name] * 40)

    return say


@pytest.fixture
def gw(tmp_path: Path) -> Iterator[Gateway]:
    clock = FakeClock()
    cfg = write_config(
        tmp_path / "boundgate.toml", CONFIG.format(data=tmp_path / "data", max_tokens=MAX_TOKENS)
    )
    rungs = {
        n: FakeBackend(n, params_b=p, answers=answers(n), clock=clock)
        for n, p in (("small", 0.135), ("medium", 8.0), ("large", 70.0))
    }
    app = build_app(
        load_settings(cfg),
        backends=rungs,
        meter_for=lambda b: FakeMeter(wh=GEN_WH),
        reuse_meter=FakeMeter(wh=LOOKUP_WH),
        clock=clock,
    )
    gateway: Gateway = app.state.gateway
    gateway.store.open()
    yield gateway
    gateway.store.close()


def auto(question: str) -> GenerationRequest:
    return GenerationRequest(
        model="auto", messages=[Message("user", question)], max_tokens=0, temperature=0
    )


def fake(gw: Gateway, name: str) -> FakeBackend:
    b = gw.backends[name]
    assert isinstance(b, FakeBackend)
    return b


def worst(gw: Gateway, name: str, question: str) -> int:
    """What a rung may use at most: the hold the gateway takes for it."""
    req = auto(question)
    return req.text_bytes() + gw.backends[name].template_tokens(req) + MAX_TOKENS


def answer_tokens(question: str) -> int:
    """The tokens of a fake rung's answer cut at the limit: its prompt as the fake counts it
    (4 bytes a token) and ``MAX_TOKENS``."""
    return max(1, auto(question).text_bytes() // 4) + MAX_TOKENS


# --- the daily budget -------------------------------------------------------------------------


def test_a_climb_is_held_rung_by_rung_and_never_overruns_the_daily_budget(gw: Gateway) -> None:
    """Each rung's worst case is held before it runs: with room for two rungs and not three,
    the climb stops below the top and the last answer a rung gave is returned (``kept``); the
    tokens used stay within the budget. The rungs above the first are not counted as requests
    (one request a minute is enough)."""
    # room for the small rung's answer and the medium rung's worst case, not for more
    budget = answer_tokens(LOOPING) + worst(gw, "medium", LOOPING) + 5
    assert budget < 2 * answer_tokens(LOOPING) + worst(gw, "large", LOOPING)
    acme = Tenant("acme", rpm=1, daily_tokens=budget)

    async def main() -> tuple[Any, LedgerRow, int]:
        ctx = gw.context(acme, "/v1/chat/completions")
        result = await gw.complete(ctx, auto(LOOPING))
        return result, await row_of(gw, ctx.request_id), await used_today(gw, "acme")

    result, row, used = arun(main())
    route = "small;escalated=length, medium;escalated=length, large;skipped=budget"
    assert result.route is not None and result.route.header() == route
    assert result.model == "medium" and result.completion.finish_reason == "length"
    assert result.completion.text.startswith("medium")
    assert (row.outcome, row.model, row.route) == ("ok", "medium", route)
    assert fake(gw, "large").calls == 0
    assert used == row.prompt_tokens + row.completion_tokens <= budget
    assert row.wh == pytest.approx(2 * GEN_WH + 3 * LOOKUP_WH)  # large was looked up only
    # no smaller model was found adequate and the larger did not run: right-sizing avoided
    # nothing (a trial's kept looping answer claimed 12.75 Wh avoided)
    assert row.counterfactual_wh is not None and row.counterfactual_wh > 0
    assert row.rightsizing_avoided_wh == 0.0 and row.rightsizing_avoided_gco2 == 0.0


def test_the_first_rungs_hold_counts_its_prompt_format(gw: Gateway) -> None:
    """The first hold is the first rung's whole worst case, the tokens its prompt format adds
    (``template_tokens``) included: a budget one token short of it can never hold a fresh
    answer. Each rung is then looked up for a stored answer (which uses no tokens); none
    holds one: the 400 for a request larger than the whole budget (a 429 would have it sent
    again after midnight, in vain), its row naming each rung skipped and carrying the
    lookups' energy."""
    budget = worst(gw, "small", LOOPING) - 1
    assert budget >= auto(LOOPING).text_bytes() + MAX_TOKENS  # without the format, it would fit

    async def main() -> tuple[InvalidRequestError, LedgerRow]:
        ctx = gw.context(Tenant("acme", daily_tokens=budget), "/v1/chat/completions")
        with pytest.raises(InvalidRequestError) as refused:
            await gw.complete(ctx, auto(LOOPING))
        return refused.value, await row_of(gw, ctx.request_id)

    err, row = arun(main())
    assert (err.code, err.param) == (ErrorCode.INVALID_VALUE, "max_tokens")
    assert f"daily token budget of {budget}" in err.message
    assert f"at most {MAX_TOKENS - 1}" in err.message
    assert sum(fake(gw, n).calls for n in ("small", "medium", "large")) == 0
    route = "small;skipped=budget, medium;skipped=budget, large;skipped=budget"
    assert (row.outcome, row.status, row.route) == ("error", 400, route)
    assert (row.prompt_tokens, row.completion_tokens) == (0, 0)
    assert row.wh == pytest.approx(3 * LOOKUP_WH)


def test_an_auto_request_the_budget_refuses_takes_no_slot_of_the_minute(gw: Gateway) -> None:
    """A climb the spent budget refuses on every rung (no stored answer on any) gets the 429
    and does not count against the requests per minute: the tenant's next request that a
    stored answer serves is not refused for the minute."""
    acme = Tenant("acme", rpm=2, daily_tokens=worst(gw, "small", LOOPING))  # one at a time

    async def main() -> list[str]:
        codes = []
        for question in (LOOPING, "Another question?", "A third?", "A fourth?", LOOPING):
            try:
                await gw.complete(gw.context(acme, "/v1/chat/completions"), auto(question))
                codes.append("ok")
            except RateLimitError as exc:
                codes.append(str(exc.code))
            await gw.drain()
        return codes

    spent = str(ErrorCode.DAILY_TOKEN_BUDGET_EXCEEDED)
    assert arun(main()) == ["ok", spent, spent, spent, "ok"]  # the last one: a stored answer


def test_the_repro_budget_of_1500_tokens_is_not_overrun(tmp_path: Path) -> None:
    """The tester's case: no ``max_tokens``, the gateway's default 1024, every rung looping,
    a budget of 1500: only the first rung fits; its cut answer is returned."""
    clock = FakeClock()
    text = CONFIG.format(data=tmp_path / "data", max_tokens=1024)
    rungs = {
        n: FakeBackend(n, answers=lambda q, n=n: " ".join([n] * 5000), clock=clock)
        for n in ("small", "medium", "large")
    }
    app = build_app(
        load_settings(write_config(tmp_path / "boundgate.toml", text)),
        backends=rungs,
        meter_for=lambda b: FakeMeter(wh=GEN_WH),
        reuse_meter=FakeMeter(wh=LOOKUP_WH),
        clock=clock,
    )
    gw: Gateway = app.state.gateway
    gw.store.open()
    try:

        async def main() -> tuple[Any, int]:
            ctx = gw.context(Tenant("acme", daily_tokens=1500), "/v1/chat/completions")
            result = await gw.complete(ctx, auto("LONGALL please"))
            return result, await used_today(gw, "acme")

        result, used = arun(main())
    finally:
        gw.store.close()
    assert result.route.header() == (
        "small;escalated=length, medium;skipped=budget, large;skipped=budget"
    )
    assert result.model == "small" and used <= 1500


# --- a failed climb ---------------------------------------------------------------------------


def failed_climb(gw: Gateway) -> tuple[LedgerRow, int]:
    """An ``auto`` request of acme's (a budget of 10,000) on ``FAILING``, which the upper
    rungs fail: its 503's ledger row, and what acme's budget was charged today."""
    acme = Tenant("acme", daily_tokens=10_000)

    async def main() -> tuple[LedgerRow, int]:
        ctx = gw.context(acme, "/v1/chat/completions")
        with pytest.raises(ServiceUnavailableError):
            await gw.complete(ctx, auto(FAILING))
        return await row_of(gw, ctx.request_id), await used_today(gw, "acme")

    return arun(main())


def test_a_failed_climb_ledgers_the_rungs_that_ran_and_every_rung_tried(gw: Gateway) -> None:
    """The small rung's cut answer escalates, the medium rung fails (escalated), the large one
    fails too: the 503's row carries the small rung's tokens, the failed rungs' prompts (their
    models had started on them; no tokens came), the energy of the three generations (the
    failed ones metered up to their failure) and of the three lookups, and its route ends with
    the rung whose error ended the request; the budget is charged what ran."""
    row, used = failed_climb(gw)
    assert (row.outcome, row.status) == ("error", 503)
    assert row.route == "small;escalated=length, medium;escalated=error, large;failed"
    assert row.completion_tokens == MAX_TOKENS
    # the small rung's answer counted its prompt, each failed rung its own (the estimate)
    failed = sum(
        estimated_prompt_tokens(gw.backends[n], auto(FAILING)) for n in ("medium", "large")
    )
    assert row.prompt_tokens == answer_tokens(FAILING) - MAX_TOKENS + failed
    assert row.wh == pytest.approx(3 * GEN_WH + 3 * LOOKUP_WH)
    assert row.model == "large"
    assert used == row.prompt_tokens + row.completion_tokens


def test_a_rung_on_a_server_that_fails_before_any_output_is_charged_no_prompt(gw: Gateway) -> None:
    """An operator's trial: an ``auto`` rung on an upstream that answered 500 was charged its
    prompt (11 tokens at the estimate), where the same upstream's 502 asked directly was
    charged none. A backend that does not report its start (an upstream server) and fails
    before any output counts no prompt on a rung either, as on a request."""
    for name in ("medium", "large"):
        fake(gw, name).reports_start = False  # as an upstream server: no start to report
    row, used = failed_climb(gw)
    assert row.route == "small;escalated=length, medium;escalated=error, large;failed"
    assert row.prompt_tokens == answer_tokens(FAILING) - MAX_TOKENS  # the small rung's only
    assert used == row.prompt_tokens + row.completion_tokens


# --- a client that leaves ---------------------------------------------------------------------


async def _consume(events: AsyncIterator[Any]) -> None:
    async for _ in events:
        pass


@pytest.mark.parametrize("stream", [False, True])
def test_a_climb_whose_client_leaves_is_ledgered_with_what_ran(gw: Gateway, stream: bool) -> None:
    """The client leaves while the medium rung generates (after the small rung's cut answer):
    the cancelled row counts the small rung's answer and the medium rung's generation so far
    (its prompt at the context check's estimate, the tokens it produced), both generations'
    energy and both lookups; the route names the rung that was running. The budget is charged
    the same tokens."""
    medium = fake(gw, "medium")
    medium.token_delay_s = 1.0  # a token a turn of the event loop (the fake clock moves)
    acme = Tenant("acme", daily_tokens=10_000)

    async def main() -> tuple[LedgerRow, int, int]:
        ctx = gw.context(acme, "/v1/chat/completions")
        req = auto(LOOPING)
        task = asyncio.create_task(
            _consume(gw.stream(ctx, req)) if stream else gw.complete(ctx, req)
        )
        produced = 0
        for _ in range(100_000):
            await asyncio.sleep(0)
            note = gw.ledger.opened(ctx.request_id)
            if medium.calls and note is not None and note.completion_tokens >= MAX_TOKENS + 3:
                produced = note.completion_tokens - MAX_TOKENS
                break
        assert produced, "the medium rung never started"
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return await row_of(gw, ctx.request_id), await used_today(gw, "acme"), produced

    row, used, produced = arun(main())
    assert (row.outcome, row.status, row.stream) == ("cancelled", 499, stream)
    assert row.route == "small;escalated=length, medium;cancelled"
    assert row.model == "medium"
    assert produced <= row.completion_tokens - MAX_TOKENS < MAX_TOKENS
    assert row.prompt_tokens > 0
    assert row.wh == pytest.approx(2 * GEN_WH + 2 * LOOKUP_WH)
    assert used == row.prompt_tokens + row.completion_tokens
    assert fake(gw, "large").calls == 0
