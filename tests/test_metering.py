"""What a named model's request is metered and ledgered with, whatever its end: a generation
that fails after some tokens, a refusal after the reuse lookup, a client that leaves during a
hit's replay; and what the metrics count of it.

The real gateway in process, fake models (``FakeBackend``), a ``FakeClock``, ``FakeMeter``s of
fixed energy: 1 mWh a generation, 0.1 mWh a reuse lookup.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from boundgate.assembly import build_app
from boundgate.backends.base import Chunk, GenerationRequest, Message
from boundgate.backends.fake import FakeBackend
from boundgate.clock import FakeClock
from boundgate.energy import FakeMeter, Method
from boundgate.errors import ErrorCode, RateLimitError, ServiceUnavailableError
from boundgate.gateway import Finished, Gateway
from boundgate.scheduler.handlers import make_variants
from boundgate.settings import load_settings
from boundgate.store import Claim, LedgerRow, SQLiteStore
from boundgate.tenants import Tenant, day_window, tokens_counter
from helpers import arun, row_of, used_today, write_config

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

[creativity]
min_askers = 2
variants = 1

[routing.ladders]
default = ["small", "large"]

[models.small]
backend = "fake"
default = true
params_b = 0.135

[models.large]
backend = "fake"
params_b = 70
"""


def make(
    tmp_path: Path,
    generation: Method = "estimate",
    store: Callable[[Path], SQLiteStore] | None = None,
) -> Gateway:
    """The gateway, its store open; ``generation``: the method of the models' meter (the
    lookups' is the CPU-time estimate); ``store``: makes its store from the database's path."""
    clock = FakeClock()
    cfg = write_config(tmp_path / "boundgate.toml", CONFIG.format(data=tmp_path / "data"))
    settings = load_settings(cfg)
    app = build_app(
        settings,
        store=store(settings.db_path) if store is not None else None,
        backends={
            name: FakeBackend(name, params_b=p, clock=clock)
            for name, p in (("small", 0.135), ("large", 70.0))
        },
        meter_for=lambda b: FakeMeter(wh=GEN_WH, method=generation),
        reuse_meter=FakeMeter(wh=LOOKUP_WH),
        clock=clock,
    )
    gateway: Gateway = app.state.gateway
    gateway.store.open()
    return gateway


@pytest.fixture
def gw(tmp_path: Path) -> Iterator[Gateway]:
    gateway = make(tmp_path)
    yield gateway
    gateway.store.close()


def ask(question: str = Q, max_tokens: int = 0, **kw: Any) -> GenerationRequest:
    return GenerationRequest(
        model=kw.pop("model", "small"),
        messages=[Message("user", question)],
        max_tokens=max_tokens,
        temperature=kw.pop("temperature", 0),
        **kw,
    )


def metric(gw: Gateway, name: str, **labels: str) -> float:
    """The value of sample ``name`` with ``labels`` (among others) in the gateway's metrics;
    0 when there is none."""
    for family in text_string_to_metric_families(gw.metrics.render().decode()):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0


def small(gw: Gateway) -> FakeBackend:
    b = gw.backends["small"]
    assert isinstance(b, FakeBackend)
    return b


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


@pytest.mark.parametrize("stream", [False, True])
def test_an_upstream_failing_before_any_output_is_charged_no_prompt(
    gw: Gateway, stream: bool
) -> None:
    """A trial: an upstream that refused the connection (502) had its non-streamed row
    record the prompt estimate (19 tokens) as processed, its streamed one 0. A backend that
    does not report its start (an upstream server) and failed before any output counts no
    prompt, streamed or not; the lookup's energy still counts."""
    small(gw).reports_start = False  # as an upstream server: no start is reported
    small(gw).failures.append(0)

    async def main() -> LedgerRow:
        ctx = gw.context(Tenant("acme"), "/v1/chat/completions")
        with pytest.raises(ServiceUnavailableError):
            if stream:
                async for _ in gw.stream(ctx, ask()):
                    pass
            else:
                await gw.complete(ctx, ask())
        return await row_of(gw, ctx.request_id)

    row = arun(main())
    assert (row.prompt_tokens, row.completion_tokens) == (0, 0)
    assert row.wh > 0 and row.reuse == "miss"


def test_a_budget_refusal_after_the_lookup_carries_the_lookups_energy(gw: Gateway) -> None:
    """The daily budget is spent and no stored answer fits: the 429 comes after the reuse
    lookup ran, so its row carries the lookup's energy and decision (as model "auto"'s did)."""
    poor = Tenant("poor", daily_tokens=100)

    async def main() -> LedgerRow:
        spent = Claim(tokens_counter("poor"), day_window(gw.clock.time()), 90, 100)
        assert await gw.store.reserve("earlier", [spent], gw.clock.time()) is None
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


@pytest.mark.parametrize("stream", [False, True])
def test_a_hit_from_memory_found_revoked_keeps_both_lookups_energy(
    gw: Gateway, stream: bool
) -> None:
    """A hit from memory whose row's check finds its answer revoked (by another process,
    here the store written directly) is looked up again, and generated: its row carries both
    lookups' energy and the generation's. The first lookup's was dropped (one lookup's)."""
    acme = Tenant("acme")

    async def request() -> Any:
        ctx = gw.context(acme, "/v1/chat/completions")
        if not stream:
            return ctx, await gw.complete(ctx, ask())
        events = [e async for e in gw.stream(ctx, ask())]
        assert isinstance(events[-1], Finished)
        return ctx, events[-1]

    async def main() -> tuple[LedgerRow, Any]:
        await request()  # a miss
        _, checked = await request()  # a hit read from the store, kept in memory
        _, unchecked = await request()
        assert unchecked.reuse.unchecked
        await gw.store.set_entry_document(checked.reuse.entry.key, None, revoked=True)
        calls = small(gw).calls
        ctx, after = await request()
        assert small(gw).calls == calls + 1  # generated afresh
        return await row_of(gw, ctx.request_id), after

    row, after = arun(main())
    assert (row.outcome, row.reuse) == ("ok", "miss")
    assert row.wh == pytest.approx(GEN_WH + 2 * LOOKUP_WH)
    assert after.energy.wh == pytest.approx(row.wh)


# --- a client that leaves ---------------------------------------------------------------------


async def _leave_after(events: AsyncIterator[Chunk | Finished], chunks: int) -> None:
    """Consume ``chunks`` text chunks of a stream, then go away (as a client closing it)."""
    seen = 0
    async for event in events:
        seen += isinstance(event, Chunk)
        if seen == chunks:
            break
    await events.aclose()


@pytest.mark.parametrize("leaves", [False, True])
def test_a_hit_whose_client_leaves_during_the_replay_is_cancelled_everywhere(
    gw: Gateway, leaves: bool
) -> None:
    """A streamed hit's row is committed before its replay. A client that stays to the end
    was served: ok, reused, the generation's cost avoided, in the row, the report and the
    metrics. One that leaves during the replay got no whole answer: its row, the report and
    the metrics all say cancelled (499), not reused, nothing avoided; the row keeps what the
    lookup found (``hit-exact``, the answer's tokens) and its energy (the lookup's)."""

    async def main() -> tuple[LedgerRow, Any]:
        await gw.complete(gw.context(Tenant("acme"), "/v1/chat/completions"), ask())
        ctx = gw.context(Tenant("acme"), "/v1/chat/completions")
        events = gw.stream(ctx, ask())
        if leaves:
            await _leave_after(events, 1)
        else:
            async for _ in events:
                pass
        row = await row_of(gw, ctx.request_id)
        (report,) = await gw.store.report()
        return row, report

    row, report = arun(main())
    assert row.reuse == "hit-exact" and row.wh == pytest.approx(LOOKUP_WH)
    assert row.completion_tokens > 0  # the stored answer's, as on every hit's row
    outcome, status = ("cancelled", "499") if leaves else ("ok", "200")
    assert (row.outcome, str(row.status)) == (outcome, status)
    avoided = 0.0 if leaves else GEN_WH
    assert row.avoided_wh == pytest.approx(avoided)
    assert ("avoided_method" in row.extra) is not leaves
    assert (report.requests, report.reused) == (2, 0 if leaves else 1)
    assert report.avoided_wh == pytest.approx(avoided)
    requests = "boundgate_requests_total"
    assert metric(gw, requests, model="small", outcome="cancelled", status="499") == leaves
    assert metric(gw, requests, model="small", outcome="ok") == (1 if leaves else 2)
    assert metric(gw, "boundgate_energy_joules_total", kind="avoided") == pytest.approx(
        avoided * 3600
    )
    spent = metric(gw, "boundgate_energy_joules_total", kind="spent")
    assert spent == pytest.approx((GEN_WH + 2 * LOOKUP_WH) * 3600)
    assert metric(gw, "boundgate_reuse_total", model="small", result="hit-exact") == 1


def test_a_miss_whose_client_leaves_keeps_its_lookups_decision(gw: Gateway) -> None:
    async def main() -> LedgerRow:
        ctx = gw.context(Tenant("acme"), "/v1/chat/completions")
        await _leave_after(gw.stream(ctx, ask()), 3)
        return await row_of(gw, ctx.request_id)

    row = arun(main())
    assert (row.outcome, row.status, row.reuse) == ("cancelled", 499, "miss")
    assert row.completion_tokens == 3 and row.wh == pytest.approx(GEN_WH + LOOKUP_WH)
    assert metric(gw, "boundgate_reuse_total", model="small", result="miss") == 1


def test_an_auto_answer_whose_client_leaves_during_the_replay_claims_no_right_sizing(
    gw: Gateway,
) -> None:
    """The small rung answers a model "auto" request (the large rung's estimate minus what it
    spent is right-sizing's avoided energy); a client that leaves while the answer is
    replayed got no whole answer: its cancelled row claims nothing avoided, nor do the
    metrics."""

    async def main() -> LedgerRow:
        ctx = gw.context(Tenant("acme"), "/v1/chat/completions")
        await _leave_after(gw.stream(ctx, ask(model="auto")), 1)
        return await row_of(gw, ctx.request_id)

    row = arun(main())
    assert (row.outcome, row.status) == ("cancelled", 499)
    assert row.route == "small;answered" and row.wh == pytest.approx(GEN_WH + LOOKUP_WH)
    assert row.counterfactual_wh is not None and row.counterfactual_wh > row.wh
    assert row.rightsizing_avoided_wh == 0.0 and row.rightsizing_avoided_gco2 == 0.0
    assert metric(gw, "boundgate_routing_avoided_energy_joules_total") == 0.0


class CommitHangs(SQLiteStore):
    """A store whose commit of an answered request's row, once ``armed``, does not come back
    to the caller (``written``: after writing the row; else before): its client leaves
    meanwhile. Only the first such commit hangs."""

    def __init__(self, path: Path, *, written: bool) -> None:
        super().__init__(path)
        self.written = written
        self.armed = False
        self.entered = asyncio.Event()

    def _hangs(self, row: LedgerRow) -> bool:
        hangs, self.armed = self.armed and row.outcome == "ok", self.armed and row.outcome != "ok"
        return hangs

    async def _hang(self) -> None:
        self.entered.set()
        await asyncio.Event().wait()  # until the caller is cancelled

    async def record(self, row: LedgerRow) -> None:
        hangs = self._hangs(row)
        if not hangs or self.written:
            await super().record(row)
        if hangs:
            await self._hang()

    async def record_hit(self, row: LedgerRow, entry: Any, release: Any = None) -> bool:
        hangs = self._hangs(row)
        written = (
            await super().record_hit(row, entry, release) if not hangs or self.written else False
        )
        if hangs:
            await self._hang()
        return written


def leave_during_commit(
    tmp_path: Path, written: bool, model: str, stream: bool, before: int = 0
) -> tuple[Gateway, LedgerRow]:
    """A request for ``model`` whose client leaves while its answer's row is being committed
    (``before``: after as many requests for the same question, served in full); the gateway
    (its store closed) and the request's row."""
    hangs: list[CommitHangs] = []

    def store(path: Path) -> SQLiteStore:
        hangs.append(CommitHangs(path, written=written))
        return hangs[0]

    gw = make(tmp_path, store=store)

    async def request(ctx: Any) -> None:
        if stream:
            async for _ in gw.stream(ctx, ask(model=model)):
                pass
        else:
            await gw.complete(ctx, ask(model=model))

    async def main() -> LedgerRow:
        (slow,) = hangs
        for _ in range(before):
            await request(gw.context(Tenant("acme"), "/v1/chat/completions"))
        slow.armed = True
        ctx = gw.context(Tenant("acme"), "/v1/chat/completions")
        task = asyncio.ensure_future(request(ctx))
        await slow.entered.wait()
        task.cancel()  # the client leaves (server.common.until_disconnected; SSEResponse)
        with pytest.raises(asyncio.CancelledError):
            await task
        return await row_of(gw, ctx.request_id)

    try:
        return gw, arun(main())
    finally:
        gw.store.close()


REQUESTS = "boundgate_requests_total"


@pytest.mark.parametrize("written", [False, True])
@pytest.mark.parametrize("stream", [False, True])
def test_a_client_leaving_during_the_ledger_commit_is_counted_once(
    tmp_path: Path, stream: bool, written: bool
) -> None:
    """A client left while its answer's row was being committed (the response waits for
    it): the row was counted in the metrics as answered before the commit, then again as
    cancelled by the cancellation's row, two requests and twice its energy in /metrics for
    one. It is counted once, as the row the ledger keeps says: cancelled (499)."""
    gw, row = leave_during_commit(tmp_path, written, "small", stream)
    assert (row.outcome, row.status) == ("cancelled", 499)
    assert metric(gw, REQUESTS, model="small", outcome="cancelled", status="499") == 1
    assert metric(gw, REQUESTS, model="small", outcome="ok") == 0
    spent = metric(gw, "boundgate_energy_joules_total", kind="spent")
    assert spent == pytest.approx((GEN_WH + LOOKUP_WH) * 3600)
    assert metric(gw, "boundgate_reuse_total", model="small", result="miss") == 1


@pytest.mark.parametrize("memory", [False, True])
@pytest.mark.parametrize("written", [False, True])
@pytest.mark.parametrize("stream", [False, True])
def test_a_hit_whose_client_leaves_during_its_commit_is_cancelled_and_counted_once(
    tmp_path: Path, stream: bool, written: bool, memory: bool
) -> None:
    """A hit's row, read from the store or from memory (``memory``: its row's statement
    checks it), is committed before its answer is sent; a client that leaves meanwhile got
    none. A streamed one was counted nowhere, a plain one as served; both are now cancelled
    (499), in the row and the metrics, once, claiming nothing avoided."""
    gw, row = leave_during_commit(tmp_path, written, "small", stream, before=2 if memory else 1)
    assert (row.outcome, row.status, row.reuse) == ("cancelled", 499, "hit-exact")
    assert row.avoided_wh == 0.0 and row.wh == pytest.approx(LOOKUP_WH)
    assert metric(gw, REQUESTS, model="small", outcome="cancelled", status="499") == 1
    assert metric(gw, REQUESTS, model="small", outcome="ok") == (2 if memory else 1)
    assert metric(gw, "boundgate_energy_joules_total", kind="avoided") == pytest.approx(
        (GEN_WH if memory else 0.0) * 3600
    )


@pytest.mark.parametrize("stream", [False, True])
def test_an_auto_request_whose_client_leaves_during_the_commit_is_counted_once(
    tmp_path: Path, stream: bool
) -> None:
    """Counted once, as the ledger says: a plain one got no answer (cancelled, as a named
    model's request); a streamed one's row is committed once its answer was replayed whole
    (it stands)."""
    gw, row = leave_during_commit(tmp_path, True, "auto", stream)
    assert row.route == "small;answered"
    assert row.outcome == ("ok" if stream else "cancelled")
    assert metric(gw, REQUESTS, model="small", outcome=row.outcome) == 1
    assert sum(metric(gw, REQUESTS, model="small", outcome=o) for o in ("ok", "cancelled")) == 1


# --- tokens processed -------------------------------------------------------------------------


def test_the_token_counter_counts_what_the_models_processed(gw: Gateway) -> None:
    """Two misses, two hits of them (streamed or not), a generation that fails after 5 tokens
    and a model "auto" request whose two rungs generate: ``boundgate_tokens_total`` counts the
    tokens the models processed, each under the model that processed them (the misses', the
    failed one's so far, each rung's), never a hit's, which were replayed."""
    first, second = "What is the boiling point of water?", "How tall is Mount Everest?"
    looping = "Loop until the limit."
    small(gw).answers = lambda q: "loop " * 40 if q == looping else "The answer to: " + q
    acme = Tenant("acme")

    async def main() -> list[LedgerRow]:
        for question in (first, second):  # a miss each
            await gw.complete(gw.context(acme, "/v1/chat/completions"), ask(question))
        await gw.complete(gw.context(acme, "/v1/chat/completions"), ask(first))  # hits
        async for _ in gw.stream(gw.context(acme, "/v1/chat/completions"), ask(second)):
            pass
        small(gw).failures.append(5)
        with pytest.raises(ServiceUnavailableError):
            await gw.complete(gw.context(acme, "/v1/chat/completions"), ask("Fail after five."))
        # the small rung runs into the default limit (16 tokens): the large one answers
        routed = ask(looping, model="auto")
        await gw.complete(gw.context(acme, "/v1/chat/completions"), routed)
        await gw.drain()
        return list(await gw.store.ledger())

    rows = arun(main())
    hits = [r for r in rows if r.reuse == "hit-exact"]
    assert len(hits) == 2 and all(r.prompt_tokens and r.completion_tokens for r in hits)
    named = [r for r in rows if r.reuse != "hit-exact" and r.route is None]
    assert len(named) == 3 and sorted(r.outcome for r in named) == ["error", "ok", "ok"]
    (routed,) = [r for r in rows if r.route is not None]
    assert routed.route == "small;escalated=length, large;answered"
    prompt = routed.prompt_tokens // 2  # each rung's prompt, as the fakes count it

    def tokens(model: str, direction: str) -> float:
        return metric(gw, "boundgate_tokens_total", model=model, direction=direction)

    assert tokens("small", "input") == sum(r.prompt_tokens for r in named) + prompt
    assert tokens("small", "output") == sum(r.completion_tokens for r in named) + 16
    assert tokens("large", "input") == prompt
    assert tokens("large", "output") == routed.completion_tokens - 16


# --- a creative variant -----------------------------------------------------------------------


def test_a_variant_avoids_its_generations_cost_with_its_meters_method(tmp_path: Path) -> None:
    """A variant's job generates it (its row: the generation and the job's lookup, spent
    once); a request served the variant avoided that generation's cost only, not the job's
    lookup (as a stored answer's), with the method its meter measured it by, in the row, the
    response's fields and the metrics' ``method`` label."""
    gw = make(tmp_path, generation="rapl")
    haiku = "Write a haiku about autumn."

    async def main() -> tuple[Any, LedgerRow, LedgerRow]:
        for user in ("u1", "u2"):  # two askers: a round of variants is queued
            ctx = gw.context(Tenant("acme"), "/v1/chat/completions")
            result = await gw.complete(ctx, ask(haiku, temperature=1.0, user=user))
            assert result.reuse is not None and result.reuse.status == "bypass"
        (job,) = [j for j in await gw.store.jobs() if j.kind == "variants"]
        jobs_before = {r.id for r in await gw.store.ledger()}
        assert (await make_variants(gw, json.loads(job.payload)))["variants"] == 1
        await gw.drain()
        (made,) = [r for r in await gw.store.ledger() if r.id not in jobs_before]
        ctx = gw.context(Tenant("acme"), "/v1/chat/completions")
        served = await gw.complete(ctx, ask(haiku, temperature=1.0, user="u3"))
        return served, made, await row_of(gw, ctx.request_id)

    try:
        served, made, row = arun(main())
        assert made.wh == pytest.approx(GEN_WH + LOOKUP_WH)  # the variant's generation, spent
        assert served.reuse is not None and served.reuse.status == "hit-variant"
        fields = served.reuse.fields(served.energy.gco2_per_kwh)
        assert fields["avoided_wh"] == pytest.approx(GEN_WH)
        assert fields["avoided_method"] == "rapl"
        assert row.reuse == "hit-variant" and row.avoided_wh == pytest.approx(GEN_WH)
        assert row.extra["avoided_method"] == "rapl"
        assert row.wh == pytest.approx(LOOKUP_WH)  # the served request ran its lookup only
        joules = metric(gw, "boundgate_energy_joules_total", kind="avoided", method="rapl")
        assert joules == pytest.approx(GEN_WH * 3600)
        assert metric(gw, "boundgate_energy_joules_total", kind="avoided", method="estimate") == 0
    finally:
        gw.store.close()


def test_a_hit_avoids_the_carbon_its_energy_would_emit_here_and_now(gw: Gateway) -> None:
    """A trial: a hit claimed the carbon its stored answer's generation emitted in its own
    hour (and zone: an answer stored in Germany, served in Norway, claimed 11 times the
    carbon), so a row's ``avoided_gco2`` was not its ``avoided_wh`` at its own intensity. The
    hit avoided that energy here and now: avoided_wh × the hit's intensity / 1000, in the
    row, the response's fields and the metrics."""

    async def main() -> tuple[LedgerRow, LedgerRow, Any]:
        ctx = gw.context(Tenant("acme"), "/v1/chat/completions")
        await gw.complete(ctx, ask())
        missed = await row_of(gw, ctx.request_id)
        gw.clock.advance(16 * 3600.0)  # another hour of the grid: another intensity
        ctx = gw.context(Tenant("acme"), "/v1/chat/completions")
        served = await gw.complete(ctx, ask())
        return missed, await row_of(gw, ctx.request_id), served

    missed, hit, served = arun(main())
    assert hit.reuse == "hit-exact" and hit.avoided_wh == pytest.approx(GEN_WH)
    assert missed.gco2_per_kwh is not None and hit.gco2_per_kwh is not None
    assert missed.gco2_per_kwh != hit.gco2_per_kwh
    assert hit.avoided_gco2 == pytest.approx(GEN_WH * hit.gco2_per_kwh / 1000)
    assert served.reuse.fields(served.energy.gco2_per_kwh)["avoided_gco2"] == pytest.approx(
        hit.avoided_gco2
    )
    grams = metric(gw, "boundgate_carbon_grams_total", kind="avoided")
    assert grams == pytest.approx(hit.avoided_gco2)
