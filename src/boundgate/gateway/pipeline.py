"""``Gateway``: the pipeline of a request (see the package's docstring) for a named model, plain
or streamed (``complete``, ``stream``), with reuse before generation and the ledger row before
the answer. Its steps are its parts': ``admission.py`` (admission, the budgets' holds and
refusals), ``metering.py`` (energy, write-ahead notes, error rows), ``reusing.py`` (lookup,
coalescing, a hit's commit, remembering), ``routed.py`` (``model: "auto"``) and
``embeddings.py`` (``embed``: ``/v1/embeddings``)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncGenerator, Callable
from datetime import UTC, datetime

from ..backends.base import Backend, CancelToken, Chunk, Completion, GenerationRequest, Usage
from ..clock import Clock, SystemClock
from ..energy import (
    EnergyReport,
    EnergyReporter,
    Measurement,
    Meter,
    Sharing,
    combine,
)
from ..errors import BoundgateError, ModelNotFoundError, shown
from ..grid.base import CarbonSource
from ..ledger import LedgerWriter
from ..metrics import Metrics
from ..profiles import EnergyProfiles
from ..reuse.engine import ReuseEngine
from ..reuse.variants import CreativityBuffer
from ..routing.ladder import Router
from ..scheduler.jobs import JobQueue
from ..settings import EMBEDDING_MODEL, EnergySettings, ReasoningSettings, StoreSettings
from ..store import LedgerRow, Store
from ..tenants import Limiter, Tenant
from .context import (
    Finished,
    RequestContext,
    Result,
    hit_usage,
    listed_models,
    new_request_id,
)
from .embeddings import Embedding
from .reusing import replay
from .routed import Routing


class Gateway(Routing, Embedding):
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
        default_temperature: float | None = None,
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
        self.default_temperature = default_temperature
        self.aliases = aliases or {}
        self.reuse = reuse
        self.reuse_meter = shared(reuse_meter) if reuse_meter is not None else None
        self.jobs = jobs
        # the mean run time of a batch line this process measured (s; exponentially
        # weighted, ``batches.objects.note_line_s``), None before the first: batches are
        # planned with no less (``line_estimate_s``)
        self.batch_line_s: float | None = None
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
            # an interrupted request's tokens are charged to its key's budgets when recovered
            on_recovered=limiter.charge_interrupted,
            on_replaced=limiter.uncharge_interrupted,
        )
        for name, b in backends.items():
            self.metrics.track_queue(name, b.queue_depth)
            if b.remote:  # (retried calls: an upstream's)
                b.on_retry = self.metrics.retry_counter("upstream", name)
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

    def model_ids(self, *, embeddings: bool = True) -> list[str]:
        """The model ids ``GET /v1/models`` lists, in its order (``listed_models``): the
        backends, ``auto`` and ``auto:<ladder>``, the embeddings model with reuse on (not
        with ``embeddings=False``: the models that generate text)."""
        auto = self.router.model_names() if self.router is not None else []
        return listed_models(self.backends, auto, embeddings=embeddings and self.reuse is not None)

    def resolve(self, model: str | None) -> Backend:
        """The backend a request's ``model`` names (an alias, or None for the default).
        Raises ``ModelNotFoundError`` (404, ``param: model``) naming as available what
        ``GET /v1/models`` lists that generates text, and the embeddings model apart, with
        its endpoint: a completion naming it would be refused too."""
        name = model or self.default_model
        name = self.aliases.get(name, name)
        backend = self.backends.get(name)
        if backend is None:
            known = ", ".join(self.model_ids(embeddings=False))
            if self.reuse is not None and name == EMBEDDING_MODEL:
                raise ModelNotFoundError(
                    f"The model '{shown(model)}' makes embeddings (POST /v1/embeddings) and "
                    f"does not generate text; available: {known}",
                    param="model",
                )
            if self.reuse is not None:
                known += f" ({EMBEDDING_MODEL} makes embeddings: POST /v1/embeddings)"
            raise ModelNotFoundError(
                f"The model '{shown(model)}' does not exist; available: {known}", param="model"
            )
        return backend

    async def drain(self) -> None:
        """Wait for rows recorded and budgets settled in the background (shutdown, tests)."""
        if self.reuse is not None:
            await self.reuse.drain()
        await self.ledger.drain()
        await self.limiter.drain()

    async def settled(self) -> None:
        """Wait until what the requests answered so far left running has landed: their ledger
        rows written (so their lookups count in the verifier), their budgets settled and
        their labels learned (``ReuseEngine.settled``). Unlike ``drain`` it stops nothing: a
        benchmark that waits for it after each request sees the verifier learn in request
        order (``bench/reuse_quality.py``), where otherwise the order depends on timing."""
        while True:
            await self.ledger.settled()
            await self.limiter.drain()
            if self.reuse is not None:
                await self.reuse.settled()
            if self.ledger.idle and (self.reuse is None or self.reuse.idle):
                return

    # --- the pipeline -------------------------------------------------------------------------
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
        hit: tuple[EnergyReport, LedgerRow] | None = None
        if lookup is not None and lookup.entry is not None:
            lookup, hit = await self._commit_served(
                ctx, req, backend, lookup, span, reservation, stream=False
            )
        if lookup is not None and lookup.entry is not None:
            assert hit is not None  # a checked lookup's row is always written
            self.limiter.settle(reservation, 0)
            e = lookup.entry
            completion = Completion(e.answer, e.finish_reason, hit_usage(backend, req, e))
            return Result(completion, backend.name, hit[0], lookup)
        lookup_m = span.stop()
        cancel = CancelToken()
        usage = Usage(0, 0)
        gen = self._generation_span(backend)
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
            if gen.token is None:  # the model never started on it (its queue was full)
                await self.limiter.uncount(reservation)
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
            lookup, hit = await self._commit_served(
                ctx, req, backend, lookup, span, reservation, stream=True
            )
        if lookup is not None and lookup.entry is not None:
            assert hit is not None  # a checked lookup's row is always written
            hit_energy, hit_row = hit
            entry = lookup.entry
            replayed = False
            try:
                async with contextlib.aclosing(replay(entry.answer)) as chunks:
                    async for chunk in chunks:
                        yield chunk
                replayed = True
                yield Finished(
                    entry.finish_reason, hit_usage(backend, req, entry), hit_energy, lookup
                )
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
        fault = False  # what is no BoundgateError (a bug): no row of its own, as in complete
        produced = 0
        parts: list[str] = []
        refused: list[str] = []
        metered = self._generation_span(backend)
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
                elif chunk.refusal:  # relayed, and the answer never stored
                    refused.append(chunk.refusal)
                    yield chunk
            m = self._measure(metered, backend, usage)
            completion = Completion("".join(parts), finish, usage, None, "".join(refused) or None)
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
            if metered.token is None:  # the model never started on it (its queue was full)
                await self.limiter.uncount(reservation)
            await self.record_error(
                ctx, err, req, stream=True, usage=usage, energy=spent, lookup=lookup
            )
            raise
        except Exception:
            # a bug: the request gets no row of its own here (a client that left is not what
            # happened); its note, no longer renewed, becomes its ``interrupted`` row
            fault = True
            raise
        finally:
            self.ledger.close(ctx.request_id)
            self._land(lookup)
            if not done:
                # The consumer went away mid-stream (or a bug ended it): stop the model,
                # account what it did.
                cancel.cancel()
                await gen.aclose()
                partial = self._streamed_so_far(backend, req, usage, produced)
                if m is None:
                    m = self._measure(metered, backend, partial)
                if not fault:
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
