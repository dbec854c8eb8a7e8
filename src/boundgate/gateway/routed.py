"""``model: "auto"`` through the gateway: plan the ladder, climb its rungs through the normal
pipeline (reuse lookup, generate, meter, remember) until an answer passes the router's checks,
and ledger the whole climb as one request. A mixin of ``Gateway`` (``pipeline.py``), whose
helpers it uses."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncGenerator, Callable
from typing import TYPE_CHECKING

from ..backends.base import Backend, CancelToken, Chunk, Completion, GenerationRequest, Usage
from ..clock import Clock
from ..energy import EnergyReport, GenerationSpan, Measurement, Meter, Span, combine
from ..errors import BoundgateError
from ..ledger import LedgerWriter
from ..metrics import Metrics
from ..profiles import EnergyProfiles
from ..reuse.engine import ReuseEngine
from ..reuse.lookup import Lookup
from ..reuse.stored import replay_pieces, usage_of
from ..routing.ladder import Route, Router
from ..store import LedgerRow
from ..tenants import Limiter, Reservation
from .context import Finished, RequestContext, Result, refuse_over_context


class Routing:
    """``routes``, ``_route`` and ``_stream_routed`` (mixed into ``Gateway``)."""

    if TYPE_CHECKING:  # what it uses of the gateway
        backends: dict[str, Backend]
        router: Router | None
        reuse: ReuseEngine | None
        limiter: Limiter
        metrics: Metrics
        profiles: EnergyProfiles
        ledger: LedgerWriter
        clock: Clock
        default_max_tokens: int
        meter_for: Callable[[Backend], Meter]
        energy_report: Callable[[Measurement, float], EnergyReport]

        def _span(self) -> Span: ...
        async def admit_or_count(
            self, ctx: RequestContext, tokens: int, reasoning: int
        ) -> Reservation: ...
        @staticmethod
        def _refuse_if_spent(ctx: RequestContext, lookup: Lookup | None) -> None: ...
        def _measure(self, gen: GenerationSpan, backend: Backend, usage: Usage) -> Measurement: ...
        def reasoning_cap(self, backend: Backend, req: GenerationRequest) -> int: ...
        @staticmethod
        def asker(ctx: RequestContext, req: GenerationRequest) -> str | None: ...
        async def yield_to_interactive(
            self, poll_s: float = 0.05, max_s: float = 300.0
        ) -> None: ...
        async def record_error(
            self,
            ctx: RequestContext,
            err: BoundgateError,
            req: GenerationRequest | None = None,
            *,
            stream: bool = False,
        ) -> None: ...
        async def _lookup(
            self,
            ctx: RequestContext,
            req: GenerationRequest,
            backend: Backend,
            check_live: bool = True,
        ) -> Lookup | None: ...
        async def _remember(
            self,
            ctx: RequestContext,
            lookup: Lookup | None,
            backend: Backend,
            completion: Completion,
            energy: EnergyReport,
            req: GenerationRequest,
        ) -> None: ...
        async def _open_request(
            self,
            ctx: RequestContext,
            req: GenerationRequest,
            backend: Backend,
            gen: GenerationSpan,
            *,
            stream: bool,
        ) -> LedgerRow: ...
        @staticmethod
        def _metered_request(
            req: GenerationRequest, gen: GenerationSpan, note: LedgerRow
        ) -> GenerationRequest: ...

    def routes(self, req: GenerationRequest) -> bool:
        """Whether ``req`` asks for ``model: "auto"`` (or ``auto:<ladder>``)."""
        return self.router is not None and self.router.is_auto(req.model)

    async def _run_rung(
        self,
        ctx: RequestContext,
        req: GenerationRequest,
        backend: Backend,
        cancel: CancelToken,
        check: Callable[[Completion], str | None],
        *,
        stream: bool,
    ) -> tuple[Completion, Measurement, Lookup | None, str | None]:
        """One rung of an auto request through the normal pipeline (reuse lookup in the
        rung's own scope, else generate, meter and remember): its answer, the energy it took
        (lookup included), the lookup (``lookup.entry`` set: the answer was reused) and why
        ``check`` sends it to the next rung (None: keep it). An answer escalated as
        ``logprob`` is not remembered: a stored answer has no log-probabilities, so a later
        lookup could not check it again and would serve it."""
        span = self._span()
        lookup = await self._lookup(ctx, req, backend)
        lookup_m = span.stop()
        if lookup is not None and lookup.novel:
            ctx.novel = True  # counted once against the novelty budget, not once per rung
        if lookup is not None and lookup.entry is not None:
            assert self.reuse is not None
            await self.reuse.note_hit(lookup, self.asker(ctx, req))
            e = lookup.entry
            spent = lookup_m or Measurement(0.0, 0.0, 0.0, "estimate")
            reused = Completion(e.answer, e.finish_reason, usage_of(e))
            return reused, spent, lookup, check(reused)
        self._refuse_if_spent(ctx, lookup)  # the daily budget is spent: no fresh answer
        refuse_over_context(backend, req)
        gen = GenerationSpan(
            self.meter_for(backend), self.clock.monotonic, deferred=backend.reports_start
        )
        note = await self._open_request(ctx, req, backend, gen, stream=stream)
        completion = await backend.complete(self._metered_request(req, gen, note), cancel)
        m = self._measure(gen, backend, completion.usage)
        reason = check(completion)
        if reason != "logprob":
            await self._remember(
                ctx, lookup, backend, completion, self.energy_report(m, ctx.started), req
            )
        return completion, combine(m, lookup_m), lookup, reason

    async def _route(
        self, ctx: RequestContext, req: GenerationRequest, *, stream: bool
    ) -> tuple[Result, LedgerRow]:
        """``model: "auto"``: plan the ladder, admit once, climb the rungs until an answer
        passes the router's checks (the last rung's answer is kept whatever it is). Returns
        the result and its ledger row, not yet committed; ``req.model`` becomes the model that
        answered. The row's energy and tokens are those of every rung tried; the budget is
        settled with the tokens generated (reused answers use none). Errors are recorded."""
        assert self.router is not None
        if ctx.internal:
            await self.yield_to_interactive()
        client_limit = req.max_tokens > 0
        if not client_limit:
            req.max_tokens = self.default_max_tokens
        try:
            plan = await self.router.plan(req)
            if not plan.reasoning:  # the task's policy: no reasoning unless the client asks
                req.passthrough.setdefault("reasoning_effort", "none")
            # the reasoning budget holds the most any rung may reason (each rung gets its cap)
            reasoning = max(
                self.reasoning_cap(
                    self.backends[n], dataclasses.replace(req, passthrough={**req.passthrough})
                )
                for n in plan.rungs
            )
            reservation = await self.admit_or_count(
                ctx, req.text_bytes() + req.max_tokens, reasoning
            )
        except BoundgateError as err:
            await self.record_error(ctx, err, req, stream=stream)
            raise
        route = ctx.route = Route(plan)
        cancel = CancelToken()
        spent: Measurement | None = None
        generated = prompt_tokens = completion_tokens = reasoned = 0
        try:
            for i, name in enumerate(plan.rungs):
                backend = self.backends[name]
                rreq = dataclasses.replace(req, model=name, passthrough={**req.passthrough})
                self.reasoning_cap(backend, rreq)
                last = i == len(plan.rungs) - 1
                check_logprob = plan.logprob and not last
                threshold = self.router.logprob_threshold(backend) if check_logprob else None
                rreq.report_logprob = threshold is not None

                def check(
                    c: Completion,
                    router: Router = self.router,
                    limit: int = rreq.max_tokens,
                    last: bool = last,
                    threshold: float | None = threshold,
                ) -> str | None:
                    if last:  # the last rung's answer is kept whatever it is
                        return None
                    return router.escalation(c, limit, client_limit, threshold)

                try:
                    completion, m, lookup, reason = await self._run_rung(
                        ctx, rreq, backend, cancel, check, stream=stream
                    )
                except BoundgateError as err:
                    if err is ctx.budget_refusal and not last:
                        continue  # no stored answer on this rung: look on the next one
                    reason = None if last else self.router.escalates_error(err)
                    if reason is None:
                        raise
                    route.escalated(name, reason)
                    self.metrics.routing_escalations.labels(from_model=name, reason=reason).inc()
                    continue
                reused = lookup is not None and lookup.entry is not None
                spent = combine(m, spent)
                if not reused:
                    generated += completion.usage.total_tokens
                    reasoned += completion.usage.reasoning_tokens
                prompt_tokens += completion.usage.prompt_tokens
                completion_tokens += completion.usage.completion_tokens
                if reason is not None:
                    route.escalated(name, reason)
                    self.metrics.routing_escalations.labels(from_model=name, reason=reason).inc()
                    continue
                route.answered(name, reused)
                break
            assert spent is not None  # the last rung either answered or raised
            energy = self.energy_report(spent, ctx.started)
            # the top rung's energy for this answer: its measured profile on this host when
            # there is one, else the per-token estimate; a counterfactual is always an estimate
            u = completion.usage
            est = self.profiles.estimate(plan.top, u.prompt_tokens, u.completion_tokens)
            counterfactual = Measurement(
                est.wh, est.wh_low, est.wh_high, "estimate", f"{plan.top} ({est.source})"
            )
            route.savings(counterfactual, energy.wh, energy.gco2_per_kwh, reused)
            req.model = backend.name
            ctx.reuse = lookup
            row = self.ledger.row(
                ctx,
                rreq,
                backend,
                stream=stream,
                usage=Usage(prompt_tokens, completion_tokens),
                energy=energy,
                lookup=lookup,
                route=route,
            )
            return Result(completion, backend.name, energy, lookup, route), row
        except BoundgateError as err:
            await self.record_error(ctx, err, req, stream=stream)
            raise
        except asyncio.CancelledError:
            cancel.cancel()
            self.ledger.commit_soon(
                self.ledger.row(ctx, req, None, stream=stream, outcome="cancelled", status=499)
            )
            raise
        finally:
            self.limiter.settle(reservation, generated, reasoned)

    async def _stream_routed(
        self, ctx: RequestContext, req: GenerationRequest
    ) -> AsyncGenerator[Chunk | Finished, None]:
        """An auto request streamed: the ladder runs to its answer first (a rung's answer must
        pass the checks before any of it is sent), then the answer is replayed as chunks."""
        result, row = await self._route(ctx, req, stream=True)
        replayed = False
        try:
            for piece in replay_pieces(result.completion.text):
                yield Chunk(piece)
            replayed = True
            await self.ledger.commit(row)
            c = result.completion
            yield Finished(c.finish_reason, c.usage, result.energy, result.reuse, result.route)
        finally:
            if not replayed:  # the client left during the replay
                row.outcome, row.status = "cancelled", 499
                self.ledger.commit_soon(row)
            self.ledger.close(ctx.request_id)
