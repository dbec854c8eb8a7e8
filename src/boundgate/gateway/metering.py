"""Metering and ledger rows: a generation's energy from its meter (``_measure``), a request's
lookups on the reuse meter (``_span``, ``_hit_energy``), energy reported with its carbon
(``_report``); the write-ahead note of a generation in progress, kept current with its tokens
and its energy so far (``_open_request``, ``_metered_request``, ``_metered_so_far``); what a
generation that ended without its answer delivered ran (``_cut_short``, ``_streamed_so_far``);
and the row of a request that failed (``record_error``). A mixin of ``Gateway``
(``pipeline.py``)."""

from __future__ import annotations

import dataclasses
import functools

from ..backends.base import Backend, GenerationRequest, Usage
from ..energy import EnergyReport, GenerationSpan, Measurement, Span, Work, combine
from ..errors import BoundgateError, ModelNotFoundError
from ..reuse.lookup import Lookup
from ..store import LedgerRow
from .context import (
    RequestContext,
    cut_short_reasoning,
    cut_short_usage,
    estimated_prompt_tokens,
)
from .state import GatewayState


def _work(backend: Backend, prompt_tokens: int, completion_tokens: int, wall_s: float) -> Work:
    """What a generation on ``backend`` did, as its meter is told (``Meter.stop``, ``read``)."""
    return Work(
        backend_kind=backend.kind,
        params_b=backend.params_b,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        wall_s=wall_s,
        memory_gb=backend.memory_gb,
    )


class Metering(GatewayState):
    """Energy, write-ahead notes and error rows (mixed into ``Gateway``)."""

    def _generation_span(self, backend: Backend) -> GenerationSpan:
        """The meter of a generation on ``backend``, from its start: now, or, for a backend
        that reports it (``reports_start``), when the model starts on it."""
        return GenerationSpan(
            self.meter_for(backend), self.clock.monotonic, deferred=backend.reports_start
        )

    def _measure(self, gen: GenerationSpan, backend: Backend, usage: Usage) -> Measurement:
        token, wall_s = gen.end()
        work = _work(backend, usage.prompt_tokens, usage.completion_tokens, wall_s)
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
        counted = ctx.novel_counted or (ctx.reuse is not None and ctx.reuse.novel and not ctx.novel)
        if counted and self.creativity:
            ctx.novel_counted = False
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

    async def _note_waiting(
        self, ctx: RequestContext, req: GenerationRequest, backend: Backend, *, stream: bool
    ) -> bool:
        """Note ``ctx``'s request (``LedgerWriter.open``) while it waits for an identical
        request in flight (reuse/flight.py), unless it has a note already (an auto request's
        earlier rung): a process that dies during the wait leaves its ``interrupted`` row, as
        it does for a request queued for the model (a trial's ``kill -9`` lost the rows of
        five waiters while four queued requests kept theirs). Its prompt at the context
        check's estimate, no output, no energy (the wait is the leader's generation).
        Returns whether it opened one: the caller closes it when the wait ends."""
        if self.ledger.opened(ctx.request_id) is not None:
            return False
        usage = Usage(estimated_prompt_tokens(backend, req), 0)
        await self.ledger.open(self.ledger.row(ctx, req, backend, stream=stream, usage=usage))
        return True

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
        work = _work(backend, row.prompt_tokens, row.completion_tokens, gen.monotonic() - gen.t0)
        self._set_energy(row, self.energy_report(gen.meter.read(gen.token, work), row.ts))

    @staticmethod
    def _set_energy(row: LedgerRow, e: EnergyReport | None) -> None:
        """Write energy report ``e`` (Wh with its range and method, gCO2e and the carbon
        intensity) into open request ``row``; nothing without one."""
        if e is None:
            return
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
            usage = cut_short_usage(backend, req, produced, failed=failed)
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

    def _span(self) -> Span:
        """The reuse meter over a request's lookups, from now."""
        return Span(self.reuse_meter, self.clock.monotonic)

    def _hit_energy(self, span: Span, ctx: RequestContext) -> EnergyReport:
        m = span.stop()
        assert m is not None
        return self.energy_report(m, ctx.started)
