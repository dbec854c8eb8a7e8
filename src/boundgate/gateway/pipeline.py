"""``Gateway``: the pipeline of a request (see the package's docstring) for a named model, plain
or streamed, with reuse before generation and the ledger row before the answer."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
from collections.abc import AsyncGenerator, Callable
from datetime import UTC, datetime
from typing import Any

from ..backends.base import Backend, CancelToken, Chunk, Completion, GenerationRequest, Usage
from ..clock import Clock, SystemClock
from ..energy import (
    EnergyReport,
    EnergyReporter,
    GenerationSpan,
    Measurement,
    Meter,
    Sharing,
    Span,
    Work,
    combine,
)
from ..errors import (
    BoundgateError,
    ErrorCode,
    InvalidRequestError,
    ModelNotFoundError,
    RateLimitError,
)
from ..grid.base import CarbonSource
from ..ledger import LedgerWriter
from ..metrics import Metrics
from ..profiles import EnergyProfiles
from ..reuse.engine import ReuseEngine
from ..reuse.lookup import Lookup
from ..reuse.scope import answer_fits
from ..reuse.stored import replay_pieces, request_json, usage_of
from ..reuse.variants import CreativityBuffer, variant_entry, variants_key
from ..routing.ladder import Router
from ..scheduler.jobs import JobQueue
from ..settings import EnergySettings, ReasoningSettings, StoreSettings
from ..store import LedgerRow, Store
from ..tenants import Limiter, Reservation, Tenant
from .context import (
    EMBEDDING_MODEL,
    Finished,
    RequestContext,
    Result,
    cut_short_reasoning,
    estimated_prompt_tokens,
    new_request_id,
    refuse_over_context,
    worst_case_answer_tokens,
    worst_case_tokens,
)
from .routed import Routing

# refusals for tokens a fresh answer would use: a stored answer, which uses none, is served
BUDGET_CODES = frozenset(
    {ErrorCode.DAILY_TOKEN_BUDGET_EXCEEDED, ErrorCode.DAILY_REASONING_BUDGET_EXCEEDED}
)

REPLAY_YIELD_EVERY = 16  # replayed pieces between turns given to the event loop


class Gateway(Routing):
    def __init__(
        self,
        *,
        backends: dict[str, Backend],
        default_model: str,
        store: Store,
        carbon: CarbonSource,
        meter_for: Callable[[Backend], Meter],
        grid_zone: str,
        limiter: Limiter,
        metrics: Metrics | None = None,
        clock: Clock | None = None,
        default_max_tokens: int,
        aliases: dict[str, str] | None = None,
        reuse: ReuseEngine | None = None,
        reuse_meter: Meter | None = None,
        jobs: JobQueue | None = None,
        creativity: CreativityBuffer | None = None,
        reasoning: ReasoningSettings | None = None,
        profiles: EnergyProfiles | None = None,
        router: Router | None = None,
        open_lease_s: float | None = None,
    ) -> None:
        """``open_lease_s``: how long a generation's write-ahead note is vouched for without
        a renewal (``store.open_request_lease_s``; ``LedgerWriter.open``). ``meter_for``
        and ``reuse_meter``: each process-wide meter among them (a counter of the process or
        machine, as the local meter) is metered through one ``SharedMeter``, which splits it
        among the requests measuring at once; give the same instance for the local models
        and the lookups, so that they share it too."""
        self.backends = backends
        self.default_model = default_model
        self.store = store
        self.carbon = carbon
        shared = Sharing()

        def shared_meter_for(backend: Backend) -> Meter:
            return shared(meter_for(backend))

        self.meter_for = shared_meter_for
        self.grid_zone = grid_zone
        self.limiter = limiter
        self.metrics = metrics or Metrics()
        self.clock = clock or SystemClock()
        self.default_max_tokens = default_max_tokens
        self.aliases = aliases or {}
        self.reuse = reuse
        self.reuse_meter = shared(reuse_meter) if reuse_meter is not None else None
        self.jobs = jobs
        self.creativity = creativity
        self.reasoning = reasoning or ReasoningSettings()
        # the models' energy profiles and the per-token estimate (``profiles.estimate``)
        self.profiles = profiles or EnergyProfiles(store, backends, EnergySettings())
        self.router = router  # model: "auto" (routing/ladder.py); None: auto is unknown
        self.energy_report = EnergyReporter(carbon, grid_zone).report
        self.ledger = LedgerWriter(
            store,
            self.metrics,
            self.clock,
            grid_zone,
            lease_s=open_lease_s or StoreSettings().open_request_lease_s,
            lookups=reuse,  # a semantic lookup counts when its answered request's row is written
        )
        for name, b in backends.items():
            self.metrics.track_queue(name, b.queue_depth)
        if reuse is not None:
            self.metrics.track_reuse(reuse)
        self.metrics.track_state(
            store,
            grid_zone,
            lambda: (
                self.carbon.intensity(
                    self.grid_zone, datetime.fromtimestamp(self.clock.time(), tz=UTC)
                ).gco2_per_kwh
            ),
        )

    # --- helpers ------------------------------------------------------------------------------
    def context(
        self, tenant: Tenant, endpoint: str, request_id: str | None = None
    ) -> RequestContext:
        return RequestContext(
            request_id or new_request_id(),
            tenant,
            endpoint,
            self.clock.time(),
            self.clock.monotonic(),
        )

    def resolve(self, model: str | None) -> Backend:
        name = model or self.default_model
        name = self.aliases.get(name, name)
        backend = self.backends.get(name)
        if backend is None:
            names = sorted(self.backends)
            if self.router is not None:  # model: "auto" and "auto:<ladder>" are accepted too
                names += self.router.model_names()
            known = ", ".join(names)
            if name == EMBEDDING_MODEL and self.reuse is not None:
                raise ModelNotFoundError(
                    f"The model '{model}' makes embeddings (POST /v1/embeddings) and does not "
                    f"generate text; available: {known}",
                    param="model",
                )
            raise ModelNotFoundError(
                f"The model '{model}' does not exist; available: {known}", param="model"
            )
        return backend

    def _prepare(self, req: GenerationRequest) -> tuple[Backend, int]:
        """The request's backend, its defaults applied and its context checked; and the most
        reasoning tokens it may use."""
        backend = self.resolve(req.model)
        req.model = backend.name
        if req.max_tokens <= 0:
            req.max_tokens = self.default_max_tokens
        refuse_over_context(backend, req)
        return backend, self.reasoning_cap(backend, req)

    async def _admit(
        self, ctx: RequestContext, req: GenerationRequest, backend: Backend, reasoning: int
    ) -> Reservation:
        refusal = self._beyond_budget(ctx, req, backend, reasoning)
        tokens = worst_case_tokens(backend, req)
        return await self.admit_or_count(ctx, tokens, reasoning, refusal=refusal)

    async def admit_or_count(
        self,
        ctx: RequestContext,
        tokens: int,
        reasoning: int,
        *,
        refusal: BoundgateError | None = None,
    ) -> Reservation:
        """Admit ``tokens`` (and ``reasoning`` tokens) against the tenant's limits. When only
        the daily budget refuses (or ``refusal`` says it never can: ``_beyond_budget``) and
        reuse is on, a stored answer may still be served (it uses no tokens; docs/api.md):
        the request is counted per minute only and the refusal kept in
        ``ctx.budget_refusal``, raised by ``_refuse_if_spent`` when no stored answer is found
        (and then the per-minute slot given back: ``_refused``). Raises ``RateLimitError``
        otherwise."""
        if refusal is None:
            try:
                return await self.limiter.admit(ctx.tenant, tokens, reasoning)
            except RateLimitError as err:
                if err.code not in BUDGET_CODES:
                    raise
                refusal = err
        if self.reuse is None:
            raise refusal
        ctx.budget_refusal = refusal
        return await self.limiter.admit(ctx.tenant, 0, budgets=False)

    def _beyond_budget(
        self, ctx: RequestContext, req: GenerationRequest, backend: Backend, reasoning: int
    ) -> InvalidRequestError | None:
        """The 400 (``invalid_value``) for a request whose worst case is more than the whole
        daily budget of its key: no wait makes room for it, so a 429 with a Retry-After
        would only have it sent again tomorrow. Its ``param`` is ``max_tokens`` (as it was
        sent: chat's ``max_completion_tokens``), or the prompt when the prompt alone may
        fill the budget; for the reasoning budget, whatever sets its worst case
        (``reasoning_effort`` on a local reasoning model). None: it may fit."""
        tenant = ctx.tenant
        whose = tenant.describe()
        budget = self.limiter.budget(tenant)
        prompt = req.text_bytes() + backend.template_tokens(req)
        answer = worst_case_answer_tokens(backend, req)
        name = req.max_tokens_param
        if budget and prompt + answer > budget:
            if prompt >= budget:
                return InvalidRequestError(
                    f"the prompt may take up to {prompt} tokens (its bytes and the model's "
                    f"prompt format), as many as the whole daily token budget of {budget} of "
                    f"{whose} or more: this request can never be admitted; shorten it",
                    param="messages" if req.messages is not None else "prompt",
                )
            return InvalidRequestError(
                f"{name} is {req.max_tokens}: with its prompt (up to {prompt} tokens) this "
                f"request may need {prompt + answer} tokens, more than the whole daily "
                f"token budget of {budget} of {whose}, so it can never be admitted; set "
                f"{name} to at most {budget - prompt}",
                param=name,
            )
        reasoning_budget = self.limiter.reasoning_budget(tenant)
        if reasoning and reasoning_budget and reasoning > reasoning_budget:
            param = name if reasoning >= req.max_tokens else "reasoning_effort"
            return InvalidRequestError(
                f"this request may reason for up to {reasoning} tokens, more than the whole "
                f"daily reasoning-token budget of {reasoning_budget} of {whose}, so it can "
                f"never be admitted; lower {param}",
                param=param,
            )
        return None

    def reasoning_cap(self, backend: Backend, req: GenerationRequest) -> int:
        """Apply ``reasoning_effort`` to ``req`` for ``backend``; return the most reasoning
        tokens the request may use (its reservation against the daily reasoning budget).

        Not a reasoning model: the parameter is dropped (never sent upstream, not part of the
        reuse scope) and 0 returned. A local reasoning model gets the effort's cap from
        ``[reasoning].effort_tokens`` as ``max_reasoning_tokens``, which it enforces; an
        upstream one gets the effort as ``reasoning_effort``, a hint it may exceed, so its
        worst case is ``max_tokens``.
        """
        effort = req.passthrough.pop("reasoning_effort", None)
        if not backend.reasoning:
            req.max_reasoning_tokens = None
            return 0
        effort = effort or self.reasoning.default_effort
        req.passthrough["reasoning_effort"] = effort
        if backend.remote:
            return req.max_tokens
        req.max_reasoning_tokens = self.reasoning.cap(effort)
        return min(req.max_reasoning_tokens, req.max_tokens)

    async def drain(self) -> None:
        """Wait for rows recorded and budgets settled in the background (shutdown, tests)."""
        if self.reuse is not None:
            await self.reuse.drain()
        await self.ledger.drain()
        await self.limiter.drain()

    def _measure(self, gen: GenerationSpan, backend: Backend, usage: Usage) -> Measurement:
        token, wall_s = gen.end()
        work = Work(
            backend_kind=backend.kind,
            params_b=backend.params_b,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            wall_s=wall_s,
            memory_gb=backend.memory_gb,
        )
        return gen.meter.stop(token, work)

    async def record_error(
        self,
        ctx: RequestContext,
        err: BoundgateError,
        req: GenerationRequest | None = None,
        *,
        stream: bool = False,
        usage: Usage | None = None,
        energy: EnergyReport | None = None,
        lookup: Lookup | None = None,
    ) -> None:
        """Ledger row for a request that failed before or during generation; ``usage`` and
        ``energy``: what ran before it failed (its lookup, its generation so far, an auto
        request's rungs); ``lookup``: what its reuse lookup decided, if it ran."""
        if err.recorded:
            return
        err.recorded = True
        if ctx.reuse is not None and ctx.reuse.novel and not ctx.novel and self.creativity:
            await self.creativity.refund_novel(ctx.tenant.name)  # nothing fresh was made
        backend = None
        if req is not None:
            try:
                backend = self.resolve(req.model)
            except ModelNotFoundError:
                backend = None
        row = self.ledger.row(
            ctx,
            req,
            backend,
            stream=stream,
            usage=usage,
            energy=energy,
            outcome="error",
            status=err.status_code,
            error_code=err.code,
            lookup=lookup,
        )
        await self.ledger.commit(row)

    # --- open requests (write-ahead notes) ------------------------------------------------
    async def _open_request(
        self,
        ctx: RequestContext,
        req: GenerationRequest,
        backend: Backend,
        gen: GenerationSpan,
        *,
        stream: bool,
    ) -> LedgerRow:
        """Note ``ctx``'s request before its generation starts (``LedgerWriter.open``): its
        prompt at the context check's estimate, no output yet, and its energy read from
        ``gen``'s meter at each renewal. Once per request (an auto request's rungs share it);
        returns the note's row, for the caller to keep current."""
        row = self.ledger.opened(ctx.request_id)
        if row is not None:
            return row
        usage = Usage(estimated_prompt_tokens(backend, req), 0)
        return await self.ledger.open(
            self.ledger.row(ctx, req, backend, stream=stream, usage=usage),
            functools.partial(self._metered_so_far, gen, backend),
        )

    @staticmethod
    def _metered_request(
        req: GenerationRequest, gen: GenerationSpan, note: LedgerRow
    ) -> GenerationRequest:
        """``req`` for a non-streamed generation: metered from its start (``gen``), its
        tokens counted on its open note as they come (on top of an earlier rung's)."""
        before = note.completion_tokens

        def produced(n: int) -> None:
            note.completion_tokens = before + n

        return dataclasses.replace(req, on_start=gen.begin, on_token=produced)

    def _metered_so_far(self, gen: GenerationSpan, backend: Backend, row: LedgerRow) -> None:
        """An open request's energy so far, read from its generation's meter as its own row
        would be (a local model's CPU time or RAPL counters, an upstream's tokens so far);
        nothing while it waits for the model (its energy is the running generation's)."""
        if gen.token is None:
            return
        work = Work(
            backend_kind=backend.kind,
            params_b=backend.params_b,
            prompt_tokens=row.prompt_tokens,
            completion_tokens=row.completion_tokens,
            wall_s=gen.monotonic() - gen.t0,
            memory_gb=backend.memory_gb,
        )
        e = self.energy_report(gen.meter.read(gen.token, work), row.ts)
        row.wh, row.wh_low, row.wh_high, row.method = e.wh, e.wh_low, e.wh_high, e.method
        row.gco2, row.gco2_per_kwh = e.gco2, e.gco2_per_kwh

    def _cut_short(
        self,
        ctx: RequestContext,
        req: GenerationRequest,
        backend: Backend,
        gen: GenerationSpan,
        lookup_m: Measurement | None,
        whole: tuple[Usage, Measurement] | None,
        *,
        failed: bool = False,
    ) -> tuple[Usage, EnergyReport | None]:
        """What a non-streamed generation that ended without its answer delivered (it
        ``failed``, or its client left) ran, and its energy with its lookup's. ``whole``: its
        usage and measurement if it had completed (it failed or was left after that): those.
        Else, once the model had started on
        it: its prompt, which counts, as for a stream cut short (a whole answer's usage comes
        only at its end: the estimate the context check uses, 4 bytes a token, plus the
        prompt format), the tokens its note counted as they came, as reasoning on a reasoning
        model (an unfinished answer's reasoning is not reported), and its energy metered up to
        now. Before that: no tokens, and the lookup's energy only. A failure before any output
        from a backend that does not report its start (an upstream server: refused, say)
        counts no prompt either, as a stream that failed so does (a trial's finding)."""
        if whole is not None:
            return whole[0], self._report(combine(whole[1], lookup_m), ctx)
        usage = Usage(0, 0)
        m = lookup_m
        if gen.token is not None:
            open_row = self.ledger.opened(ctx.request_id)
            produced = open_row.completion_tokens if open_row is not None else 0
            reasoned = cut_short_reasoning(backend, req, produced)
            started = produced > 0 or backend.reports_start or not failed
            prompt = estimated_prompt_tokens(backend, req) if started else 0
            usage = Usage(prompt, produced, reasoned)
            m = combine(self._measure(gen, backend, usage), lookup_m)
        return usage, self._report(m, ctx)

    @staticmethod
    def _streamed_so_far(
        backend: Backend, req: GenerationRequest, usage: Usage, produced: int
    ) -> Usage:
        """The tokens of a stream that ended without its answer (it failed, or its client
        left) after ``produced`` text chunks, ``usage`` what the backend reported of it.
        Reasoning tokens of an unfinished stream are not reported: count what it produced, up
        to its cap. Its prompt: as the backend counted it (local models report it when they
        start on it), else, once output came, the 4-bytes-a-token estimate the context check
        uses (an upstream server reports usage only at the end)."""
        prompt = usage.prompt_tokens
        if not prompt and produced:
            prompt = estimated_prompt_tokens(backend, req)
        return Usage(
            prompt,
            usage.completion_tokens or produced,
            usage.reasoning_tokens or cut_short_reasoning(backend, req, produced),
        )

    def _report(self, m: Measurement | None, ctx: RequestContext) -> EnergyReport | None:
        return self.energy_report(m, ctx.started) if m is not None else None

    # --- embeddings ---------------------------------------------------------------------------
    async def embed(self, ctx: RequestContext, texts: list[str]) -> tuple[Any, int, EnergyReport]:
        """``/v1/embeddings``: vectors from the reuse layer's embedder, metered and ledgered.
        The texts are tokenized before they are admitted (cheap beside the model), so the
        daily budget holds what the request is charged: its tokens as the model reads them
        (special tokens added, a long text cut at the model's window)."""
        assert self.reuse is not None
        embedder = self.reuse.embedder
        span = self._span()
        tokens = await asyncio.to_thread(embedder.count_tokens, texts)
        budget = self.limiter.budget(ctx.tenant)
        if budget and tokens > budget:  # no wait makes room for it: not a 429
            raise InvalidRequestError(
                f"the input is {tokens} tokens, more than the whole daily token budget of "
                f"{budget} of {ctx.tenant.describe()}: it can never be admitted; send less",
                param="input",
            )
        reservation = await self.limiter.admit(ctx.tenant, tokens)
        done = False
        try:
            vectors = await asyncio.to_thread(embedder.embed, texts)
            done = True
        finally:
            self.limiter.settle(reservation, tokens if done else 0)
        self.ledger.processed(EMBEDDING_MODEL, Usage(tokens, 0))
        m = span.stop()
        energy = self._report(m, ctx)
        row = self.ledger.row(
            ctx,
            None,
            None,
            stream=False,
            usage=Usage(tokens, 0),
            energy=energy,
            model=EMBEDDING_MODEL,
            backend_kind="onnx",
        )
        await self.ledger.commit(row)
        assert energy is not None
        return vectors, tokens, energy

    # --- the pipeline -------------------------------------------------------------------------
    async def _lookup(
        self,
        ctx: RequestContext,
        req: GenerationRequest,
        backend: Backend,
        check_live: bool = True,
    ) -> Lookup | None:
        """``check_live``: see ``ReuseEngine.lookup`` (False: a hit may come from memory,
        ``Lookup.unchecked``, and ``_commit_hit`` then checks it with the ledger row)."""
        if self.reuse is None:
            return None
        p, key = self.reuse.plan_for(
            req,
            tenant=ctx.tenant.name,
            model_version=backend.version,
            endpoint=ctx.endpoint,
            cache_control=ctx.cache_control,
        )
        stale = self.reuse.documents.stale_keys(req, tenant=ctx.tenant.name, endpoint=ctx.endpoint)
        lookup = await self.reuse.lookup(p, key, stale, check_live=check_live)
        if p.reason == "temperature" and key is not None and not (ctx.internal or ctx.novel):
            await self._creative(ctx, req, lookup, variants=p.variants)
        lookup.novel = lookup.novel or ctx.novel  # the ledger marks what the budget counted
        return lookup

    async def _creative(
        self, ctx: RequestContext, req: GenerationRequest, lookup: Lookup, *, variants: bool
    ) -> None:
        """Above the dial: a pre-generated variant if one is left (and ``variants``: the
        request takes stored answers), else a budgeted fresh one."""
        buf = self.creativity
        if buf is None or lookup.key is None:
            return
        asker = self.asker(ctx, req) or ctx.tenant.name
        if buf.limits.novelty_exhausted == "reject" and not await buf.budget_left(ctx.tenant.name):
            await buf.admit_novel(ctx.tenant.name)  # raises 429
        body = request_json(req, tenant=ctx.tenant.name, endpoint=ctx.endpoint)
        key = variants_key(lookup.key.exact, req.temperature)
        variant = (
            await buf.take(key, asker, body, key_id=ctx.tenant.key_id, tenant=ctx.tenant.name)
            if variants
            else None
        )
        if variant is not None and answer_fits(
            variant.finish_reason, variant.completion_tokens, req.max_tokens
        ):
            lookup.entry, lookup.status = variant_entry(variant), "hit-variant"
            lookup.unchecked = False  # a variant is no stored answer: recorded as it is
            return
        await buf.admit_novel(ctx.tenant.name)
        lookup.novel = True

    @staticmethod
    def asker(ctx: RequestContext, req: GenerationRequest) -> str | None:
        """Who asked, for the prompt registry: tenant + the request's user, else the key."""
        if ctx.internal:
            return None
        return f"{ctx.tenant.name}\x00{req.user or ctx.tenant.key_id or ''}"

    async def _remember(
        self,
        ctx: RequestContext,
        lookup: Lookup | None,
        backend: Backend,
        completion: Completion,
        energy: EnergyReport,
        req: GenerationRequest,
    ) -> None:
        if self.reuse is None or lookup is None:
            return
        await self.reuse.remember(
            lookup,
            completion,
            tenant=ctx.tenant.name,
            model=backend.name,
            model_version=backend.version,
            cost_wh=energy.wh,
            cost_gco2=energy.gco2,
            cost_method=energy.method,
            request=req,
            asker=self.asker(ctx, req),
        )
        self.reuse.settle_soon(lookup, completion.text, ctx.request_id, self.asker(ctx, req))

    def _span(self) -> Span:
        """The reuse meter over a request's lookups, from now."""
        return Span(self.reuse_meter, self.clock.monotonic)

    def _hit_energy(self, span: Span, ctx: RequestContext) -> EnergyReport:
        m = span.stop()
        assert m is not None
        return self.energy_report(m, ctx.started)

    def interactive_waiting(self) -> bool:
        """Requests are queued for a local model: background work should wait."""
        return any(b.queue_depth() > 0 for b in self.backends.values())

    async def yield_to_interactive(self, poll_s: float = 0.05, max_s: float = 300.0) -> None:
        """Background work calls this before each generation: interactive requests first."""
        waited = 0.0
        while self.interactive_waiting() and waited < max_s:
            await asyncio.sleep(poll_s)
            waited += poll_s

    async def _begin(
        self, ctx: RequestContext, req: GenerationRequest, stream: bool, check_live: bool = True
    ) -> tuple[Backend, Reservation, Lookup | None, Span]:
        """Resolve, admit and look up (waiting for an identical request in flight, if one
        is computing the answer); errors are recorded and re-raised. A miss may come back
        leading a flight (``lookup.flight``): the caller lands it when it is done.
        ``check_live``: see ``_lookup``."""
        if ctx.internal:
            await self.yield_to_interactive()
        try:
            backend, reasoning = self._prepare(req)
            reservation = await self._admit(ctx, req, backend, reasoning)
        except BoundgateError as err:
            await self.record_error(ctx, err, req, stream=stream)
            raise
        span = self._span()
        try:
            lookup = ctx.reuse = await self._lookup(ctx, req, backend, check_live)
            self._refuse_if_spent(ctx, lookup)
            if lookup is not None and ctx.budget_refusal is None:
                lookup = ctx.reuse = await self._coalesce(ctx, req, backend, lookup, span)
        except BoundgateError as err:  # e.g. the daily budget's 429 after the lookup
            self.limiter.settle(reservation, 0)
            await self._refused(ctx, err, reservation)
            energy = self._report(span.stop(), ctx)  # the lookup ran: its energy counts
            await self.record_error(ctx, err, req, stream=stream, energy=energy, lookup=ctx.reuse)
            raise
        except asyncio.CancelledError:  # the client left while waiting
            self.limiter.settle(reservation, 0)
            row = self.ledger.row(
                ctx,
                req,
                backend,
                stream=stream,
                energy=self._report(span.stop(), ctx),
                outcome="cancelled",
                status=499,
                lookup=ctx.reuse,
            )
            self.ledger.commit_soon(row)
            raise
        return backend, reservation, lookup, span

    async def _coalesce(
        self,
        ctx: RequestContext,
        req: GenerationRequest,
        backend: Backend,
        lookup: Lookup,
        span: Span,
    ) -> Lookup:
        """A miss that an identical request in flight is computing waits for it, at most
        ``reuse.coalesce_wait_s`` on an upstream, until it lands on a local model (which
        would make the waiter queue behind the leader anyway) (reuse/flight.py): its stored
        answer as a ``hit-coalesced`` lookup, or, if it stored none that fits or the wait ran
        out, ``lookup`` (the request runs on its own). The wait is not metered as this
        request's energy."""
        assert self.reuse is not None
        flight = self.reuse.join_flight(lookup)
        if flight is None:
            return lookup
        span.pause()
        wait_s = self.reuse.settings.coalesce_wait_s
        landed = await flight.wait(wait_s)
        while not landed and not backend.remote and not flight.landed:
            # A local model runs one generation at a time: a waiter that ran on its own now
            # would queue behind the leader and then compute the same answer again. It waits
            # on (its client leaving still cancels it); the wait bound is for upstreams.
            landed = await flight.wait(wait_s)
        span.resume()
        hit = await self.reuse.after_flight(lookup) if landed else None
        result = "served" if hit is not None else "alone"
        self.metrics.reuse_coalesced.labels(model=backend.name, result=result).inc()
        return hit or lookup

    async def _look_again(
        self,
        ctx: RequestContext,
        req: GenerationRequest,
        backend: Backend,
        gone: Lookup,
        span: Span,
        reservation: Reservation,
    ) -> Lookup | None:
        """The answer ``gone`` came from memory and its ledger row's check found it revoked
        or rebound: forget the copy and look up again, reading the store (a hit then is
        live; else a miss), metered on the request's ``span`` (resumed: the first lookup's
        energy stays the request's). Errors are recorded and re-raised; the caller
        settles ``reservation``."""
        assert self.reuse is not None and gone.entry is not None
        self.reuse.drop_answer(gone.entry.key)
        span.resume()
        lookup = None
        try:
            lookup = await self._lookup(ctx, req, backend)
            self._refuse_if_spent(ctx, lookup)  # no stored answer after all: no fresh one
        except BoundgateError as err:
            await self._refused(ctx, err, reservation)
            energy = self._report(span.stop(), ctx)
            await self.record_error(ctx, err, req, energy=energy, lookup=lookup)
            raise
        ctx.reuse = lookup
        return lookup

    @staticmethod
    def _refuse_if_spent(ctx: RequestContext, lookup: Lookup | None) -> None:
        """Raise the daily budget's 429 (``ctx.budget_refusal``) unless ``lookup`` serves a
        stored answer."""
        if ctx.budget_refusal is not None and (lookup is None or lookup.entry is None):
            raise ctx.budget_refusal

    async def _refused(
        self, ctx: RequestContext, err: BoundgateError, counted: Reservation
    ) -> None:
        """The request ends with ``err``: if that is its daily budget's refusal (no stored
        answer served it), it does not count against its rate either, so the per-minute
        slot ``counted`` took while it looked for one is given back."""
        if err is ctx.budget_refusal:
            await self.limiter.uncount(counted)

    async def _commit_hit(
        self,
        ctx: RequestContext,
        req: GenerationRequest,
        backend: Backend,
        lookup: Lookup,
        span: Span,
        *,
        stream: bool,
        reservation: Reservation | None = None,
    ) -> tuple[EnergyReport, LedgerRow] | None:
        """Commit a hit's ledger row; its energy and the row. None only for an answer from
        memory (``lookup.unchecked``) that is no longer live: no row was written, and it must
        not be served. With ``reservation`` (only for ``lookup.unchecked``), its holds are
        given back in the row's statement and it is settled when the row is committed. A
        streamed hit's row is not observed in the metrics yet: the replay's end decides
        whether it was served or cancelled (``stream``). A client that leaves during the
        commit got no answer: the row becomes a cancelled one, counted once."""
        assert self.reuse is not None and lookup.entry is not None
        energy = self._hit_energy(span, ctx)
        usage = usage_of(lookup.entry)
        await self.reuse.note_hit(lookup, self.asker(ctx, req))
        row = self.ledger.row(
            ctx, req, backend, stream=stream, usage=usage, energy=energy, lookup=lookup
        )
        try:
            if lookup.unchecked:
                release = self.limiter.release_of(reservation) if reservation is not None else None
                if not await self.ledger.commit_hit(row, lookup.entry, release, observe=False):
                    return None
                if reservation is not None and release is not None:
                    self.limiter.released(reservation)
            else:
                await self.ledger.commit(row, observe=False)
        except asyncio.CancelledError:
            self.ledger.amend_soon(self.ledger.cancelled(row))
            raise
        if not stream:
            self.ledger.observe(row)
        return energy, row

    def _land(self, lookup: Lookup | None) -> None:
        """The request is done (answered, failed or cancelled): requests waiting for it run
        on their own if it stored nothing for them."""
        if self.reuse is not None:
            self.reuse.land(lookup)

    async def complete(self, ctx: RequestContext, req: GenerationRequest) -> Result:
        """Non-streamed generation. Errors are recorded and re-raised."""
        if self.routes(req):
            result, row = await self._route(ctx, req, stream=False)
            try:
                await self.ledger.commit(row, observe=False)
            except asyncio.CancelledError:  # the client left: no answer, as a miss's
                self.ledger.amend_soon(self.ledger.cancelled(row))
                raise
            self.ledger.observe(row)
            return result
        # a hit may come from memory: its ledger row's statement checks it is still live
        backend, reservation, lookup, span = await self._begin(ctx, req, False, check_live=False)
        if lookup is not None and lookup.entry is not None and lookup.unchecked:
            e = lookup.entry
            try:
                hit = await self._commit_hit(
                    ctx, req, backend, lookup, span, stream=False, reservation=reservation
                )
                if hit is not None:
                    completion = Completion(e.answer, e.finish_reason, usage_of(e))
                    self.limiter.settle(reservation, 0)
                    return Result(completion, backend.name, hit[0], lookup)
                lookup = await self._look_again(ctx, req, backend, lookup, span, reservation)
            except BaseException:
                self.limiter.settle(reservation, 0)
                raise
        if lookup is not None and lookup.entry is not None:
            try:
                hit = await self._commit_hit(ctx, req, backend, lookup, span, stream=False)
            finally:
                self.limiter.settle(reservation, 0)
            assert hit is not None  # a checked lookup's row is always written
            e = lookup.entry
            completion = Completion(e.answer, e.finish_reason, usage_of(e))
            return Result(completion, backend.name, hit[0], lookup)
        lookup_m = span.stop()
        cancel = CancelToken()
        usage = Usage(0, 0)
        gen = GenerationSpan(
            self.meter_for(backend), self.clock.monotonic, deferred=backend.reports_start
        )
        m: Measurement | None = None  # the whole generation's, once it ended
        energy: EnergyReport | None
        try:
            note = await self._open_request(ctx, req, backend, gen, stream=False)
            completion = await backend.complete(self._metered_request(req, gen, note), cancel)
            usage = completion.usage
            m = self._measure(gen, backend, usage)
            generation = self.energy_report(m, ctx.started)
            await self._remember(ctx, lookup, backend, completion, generation, req)
            energy = self.energy_report(combine(m, lookup_m), ctx.started)
            row = self.ledger.row(
                ctx, req, backend, stream=False, usage=usage, energy=energy, lookup=lookup
            )
            # observed once committed: a client leaving meanwhile has its cancelled row
            # written in its place (below), which is the one counted
            await self.ledger.commit(row, observe=False)
            self.ledger.observe(row)
            return Result(completion, backend.name, energy, lookup, generation=generation)
        except BoundgateError as err:
            # the generation failed: its row carries what ran, as a cancelled one's does
            whole = (usage, m) if m is not None else None
            usage, energy = self._cut_short(ctx, req, backend, gen, lookup_m, whole, failed=True)
            await self.record_error(ctx, err, req, usage=usage, energy=energy, lookup=lookup)
            raise
        except asyncio.CancelledError:
            # the client left (server.common.until_disconnected) or the server stops
            cancel.cancel()
            whole = (usage, m) if m is not None else None
            usage, energy = self._cut_short(ctx, req, backend, gen, lookup_m, whole)
            self.ledger.commit_soon(
                self.ledger.row(
                    ctx,
                    req,
                    backend,
                    stream=False,
                    usage=usage,
                    energy=energy,
                    outcome="cancelled",
                    status=499,
                    lookup=lookup,
                )
            )
            raise
        finally:
            self.ledger.close(ctx.request_id)
            self._land(lookup)
            self.limiter.settle(reservation, usage.total_tokens, usage.reasoning_tokens)
            self.ledger.processed(backend.name, usage)  # whatever the generation's end

    async def stream(
        self, ctx: RequestContext, req: GenerationRequest
    ) -> AsyncGenerator[Chunk | Finished, None]:
        """Streamed generation: text chunks, then one :class:`Finished` after the ledger commit.

        If the consumer stops early (client disconnected), generation is cancelled and the
        ledger row says ``cancelled``.
        """
        if self.routes(req):
            # closed with this one: a client that leaves has its row written now, not
            # whenever the garbage collector finalizes the routed stream
            async with contextlib.aclosing(self._stream_routed(ctx, req)) as events:
                async for event in events:
                    yield event
            return
        # a hit may come from memory: its ledger row, committed before the replay, checks it
        backend, reservation, lookup, span = await self._begin(ctx, req, True, check_live=False)
        hit: tuple[EnergyReport, LedgerRow] | None = None
        if lookup is not None and lookup.entry is not None:
            try:
                hit = await self._commit_hit(
                    ctx,
                    req,
                    backend,
                    lookup,
                    span,
                    stream=True,
                    reservation=reservation if lookup.unchecked else None,
                )
                if hit is None:  # from memory, and no longer live: nothing was written
                    lookup = await self._look_again(ctx, req, backend, lookup, span, reservation)
                    if lookup is not None and lookup.entry is not None:
                        hit = await self._commit_hit(ctx, req, backend, lookup, span, stream=True)
            except BaseException:
                self.limiter.settle(reservation, 0)
                raise
        if lookup is not None and lookup.entry is not None:
            assert hit is not None  # a checked lookup's row is always written
            hit_energy, hit_row = hit
            entry = lookup.entry
            replayed = False
            try:
                for i, piece in enumerate(replay_pieces(entry.answer), 1):
                    yield Chunk(piece)
                    if i % REPLAY_YIELD_EVERY == 0:
                        # Nothing in a replay waits: without a turn for the event loop, a long
                        # answer would be sent whole (blocking other requests) and a client's
                        # disconnect never heard before it ends.
                        await asyncio.sleep(0)
                replayed = True
                yield Finished(entry.finish_reason, usage_of(entry), hit_energy, lookup)
            finally:
                # its row was committed before the replay, observed in the metrics only now
                if replayed:
                    self.ledger.observe(hit_row)
                else:  # the client left during the replay: its row says so now
                    # (cancelled, claiming no avoided energy: the answer was not delivered)
                    self.ledger.amend_soon(self.ledger.cancelled(hit_row))
                self.limiter.settle(reservation, 0)
            return
        lookup_m = span.stop()
        cancel = CancelToken()
        usage = Usage(0, 0)
        finish = "stop"
        done = False
        produced = 0
        parts: list[str] = []
        metered = GenerationSpan(
            self.meter_for(backend), self.clock.monotonic, deferred=backend.reports_start
        )
        gen = backend.generate(dataclasses.replace(req, on_start=metered.begin), cancel)
        m: Measurement | None = None  # the whole generation's, once it ended
        try:
            # noted before the model starts and before the first byte is sent
            note = await self._open_request(ctx, req, backend, metered, stream=True)
            async for chunk in gen:
                if chunk.usage is not None:
                    usage = chunk.usage
                if chunk.finish_reason is not None:
                    finish = chunk.finish_reason
                if chunk.text:
                    produced += 1
                    note.completion_tokens = produced  # for the note's renewals
                    parts.append(chunk.text)
                    yield chunk
            m = self._measure(metered, backend, usage)
            completion = Completion("".join(parts), finish, usage)
            await self._remember(
                ctx, lookup, backend, completion, self.energy_report(m, ctx.started), req
            )
            energy = self.energy_report(combine(m, lookup_m), ctx.started)
            row = self.ledger.row(
                ctx, req, backend, stream=True, usage=usage, energy=energy, lookup=lookup
            )
            # observed once committed: a client leaving meanwhile has its cancelled row
            # written in its place (below), which is the one counted
            await self.ledger.commit(row, observe=False)
            self.ledger.observe(row)
            done = True
            yield Finished(finish, usage, energy, lookup)
        except BoundgateError as err:
            done = True
            # the generation failed: its row carries what ran (the chunks it sent), as a
            # cancelled one's does
            if m is None:
                usage = self._streamed_so_far(backend, req, usage, produced)
                if metered.token is not None:  # the model had started on it
                    m = self._measure(metered, backend, usage)
            spent = self._report(combine(m, lookup_m) if m is not None else lookup_m, ctx)
            await self.record_error(
                ctx, err, req, stream=True, usage=usage, energy=spent, lookup=lookup
            )
            raise
        finally:
            self.ledger.close(ctx.request_id)
            self._land(lookup)
            if not done:
                # The consumer went away mid-stream: stop the model, account what it did.
                cancel.cancel()
                await gen.aclose()
                partial = self._streamed_so_far(backend, req, usage, produced)
                if m is None:
                    m = self._measure(metered, backend, partial)
                energy = self.energy_report(combine(m, lookup_m), ctx.started)
                self.ledger.commit_soon(
                    self.ledger.row(
                        ctx,
                        req,
                        backend,
                        stream=True,
                        usage=partial,
                        energy=energy,
                        outcome="cancelled",
                        status=499,
                        lookup=lookup,
                    )
                )
                usage = partial
            self.limiter.settle(reservation, usage.total_tokens or produced, usage.reasoning_tokens)
            self.ledger.processed(backend.name, usage)  # whatever the generation's end
