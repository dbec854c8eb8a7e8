"""The reuse side of a request: its lookup (``_lookup``; above the creativity dial a
pre-generated variant or a budgeted fresh answer, ``_creative``), an identical miss in flight
waited for (``_coalesce``), a hit's ledger row committed before it is served (``_commit_hit``;
an answer from memory found gone looked up again, ``_look_again``), a fresh answer remembered
(``_remember``) and the flight it led landed (``_land``). ``_begin`` takes a named model's
request through admission and its lookup, ``_commit_served`` its hit to the ledger, and
``replay`` sends a whole answer as a stream. A mixin of ``Gateway`` (``pipeline.py``)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncGenerator

from ..backends.base import Backend, Chunk, Completion, GenerationRequest
from ..energy import EnergyReport, Span
from ..errors import BoundgateError
from ..reuse.lookup import Lookup
from ..reuse.policy import only_if_cached
from ..reuse.scope import answer_fits
from ..reuse.stored import replay_pieces, request_json
from ..reuse.variants import variant_entry, variants_key
from ..scheduler.jobs import model_requirement
from ..store import LedgerRow, StoreUnavailableError
from ..tenants import Reservation
from .admission import Admission
from .context import RequestContext, hit_usage
from .metering import Metering

REPLAY_YIELD_EVERY = 16  # replayed pieces between turns given to the event loop

log = logging.getLogger("boundgate.gateway")


async def replay(text: str) -> AsyncGenerator[Chunk, None]:
    """``text``, a whole answer, as the chunks of a stream (``replay_pieces``)."""
    for i, piece in enumerate(replay_pieces(text), 1):
        yield Chunk(piece)
        if i % REPLAY_YIELD_EVERY == 0:
            # Nothing in a replay waits: without a turn for the event loop, a long
            # answer would be sent whole (blocking other requests) and a client's
            # disconnect never heard before it ends.
            await asyncio.sleep(0)


REGROUPS = 2  # _coalesce: new flights the waiters of a failed or departed leader may form


class Reusing(Metering, Admission):
    """Lookup, coalescing, a hit's commit, remembering (mixed into ``Gateway``)."""

    async def _lookup(
        self,
        ctx: RequestContext,
        req: GenerationRequest,
        backend: Backend,
        check_live: bool = True,
    ) -> Lookup | None:
        """The request's reuse decision, also put on ``ctx.reuse`` (None: reuse is off).
        ``check_live``: see ``ReuseEngine.lookup`` (False: a hit may come from memory,
        ``Lookup.unchecked``, and ``_commit_hit`` then checks it with the ledger row)."""
        if self.reuse is None:
            return None
        labels = self.reuse.label_source(backend.name, backend.version, backend.answer_labels)
        read = backend.as_read(req)  # the scope of what the model reads
        room = await backend.answer_room(read)
        if room is not None:
            # the limit the model's context sets: a prompt that leaves 17 tokens is answered
            # the same, cut at 17, at max_tokens 20 (a break-it trial's exact repeat of a long
            # prompt was recomputed every time, its stored answer filed at 17)
            read = dataclasses.replace(read, max_tokens=room)
        p, key = self.reuse.plan_for(
            read,
            tenant=ctx.tenant.name,
            model_version=backend.version,
            endpoint=ctx.endpoint,
            cache_control=ctx.cache_control,
            answer_labels=labels.in_force,
        )
        stale = self.reuse.documents.stale_keys(read, tenant=ctx.tenant.name, endpoint=ctx.endpoint)
        lookup = ctx.reuse = await self.reuse.lookup(p, key, stale, check_live=check_live)
        # (on ctx before the creativity buffer may refuse it: the 429's ledger row carries
        # the lookup's decision, as /v1/boundgate/stats counts it)
        if p.reason == "temperature" and key is not None and not (ctx.internal or ctx.novel):
            await self._creative(ctx, req, backend, lookup, variants=p.variants)
        elif (
            p.reason == "opt-out"
            and self.creativity is not None
            and req.temperature > self.reuse.settings.max_temperature
            and not (ctx.internal or ctx.novel or only_if_cached(ctx.cache_control))
        ):
            # a fresh creative generation whatever the request says of stored answers: a
            # trial's Cache-Control: no-store (or boundgate.reuse off) at temperature 1 got
            # past a spent novelty budget every time
            await self.creativity.admit_novel(ctx.tenant.name, req.temperature, variant="not_taken")
            lookup.novel = True
        lookup.novel = lookup.novel or ctx.novel  # the ledger marks what the budget counted
        return lookup

    async def _creative(
        self,
        ctx: RequestContext,
        req: GenerationRequest,
        backend: Backend,
        lookup: Lookup,
        *,
        variants: bool,
    ) -> None:
        """Above the dial: a pre-generated variant if one is left (and ``variants``: the
        request takes stored answers), else a budgeted fresh one. A round of variants it
        queues requires ``backend``'s model at its version (a replica without it leaves the
        job alone)."""
        buf = self.creativity
        if buf is None or lookup.key is None:
            return
        asker = self.asker(ctx, req) or ctx.tenant.name
        # Cache-Control: only-if-cached asks for no generation: it takes a variant if one is
        # left, else its 504 (``_refuse_if_spent``), and is never counted against (or refused
        # by) the novelty budget (a re-check's request got the budget's 429, which the SDKs
        # retry, for a generation it never asked for)
        cached_only = only_if_cached(ctx.cache_control)
        if buf.limits.novelty_exhausted == "reject" and not await buf.budget_left(ctx.tenant.name):
            if cached_only:
                return
            await buf.admit_novel(ctx.tenant.name, req.temperature)  # raises 429
        body = request_json(req, tenant=ctx.tenant.name, endpoint=ctx.endpoint)
        key = variants_key(lookup.key.exact, req.temperature)
        requires = model_requirement(backend.name, backend.version)
        variant = (
            await buf.take(
                key,
                asker,
                body,
                key_id=ctx.tenant.key_id,
                tenant=ctx.tenant.name,
                requires=requires,
            )
            if variants
            else None
        )
        if variant is not None and answer_fits(
            variant.finish_reason, variant.completion_tokens, req.max_tokens
        ):
            lookup.entry, lookup.status = variant_entry(variant), "hit-variant"
            lookup.unchecked = False  # a variant is no stored answer: recorded as it is
            return
        if cached_only:
            return
        await buf.admit_novel(
            ctx.tenant.name, req.temperature, variant="none_left" if variants else "not_taken"
        )
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
        """Store ``completion`` for reuse. The store out of reach (PostgreSQL down) costs the
        answer its reuse, not the request: the ledger's commit, next, meets the outage too
        and keeps the row saying so (``LedgerWriter._keep_unwritten``); a failure here used
        to end the request as a fault, leaving its note's ``interrupted`` row, 0 tokens."""
        if self.reuse is None or lookup is None:
            return
        try:
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
        except StoreUnavailableError as exc:
            log.warning("request %s: its answer was not stored for reuse: %s", ctx.request_id, exc)
            return
        self.reuse.settle_soon(lookup, completion.text, ctx.request_id, self.asker(ctx, req))

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
            lookup = await self._lookup(ctx, req, backend, check_live)  # on ctx: _lookup's
            self._refuse_if_spent(ctx, lookup)
            if lookup is not None and ctx.budget_refusal is None:
                lookup = ctx.reuse = await self._coalesce(
                    ctx, req, backend, lookup, span, stream=stream
                )
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
        *,
        stream: bool,
    ) -> Lookup:
        """A miss that an identical request in flight is computing waits for it, at most
        ``reuse.coalesce_wait_s`` on an upstream, until it lands on a local model (which
        would make the waiter queue behind the leader anyway) (reuse/flight.py): its stored
        answer as a ``hit-coalesced`` lookup, or, if it stored none that fits or the wait ran
        out, ``lookup`` (the request runs on its own). The wait is not metered as this
        request's energy. While it waits the request has a write-ahead note
        (``_note_waiting``), so a process that dies meanwhile leaves its ``interrupted`` row."""
        assert self.reuse is not None
        hit = None
        for regroup in range(REGROUPS + 1):
            flight = self.reuse.join_flight(lookup)
            if flight is None:
                # a leader now: an identical request may have stored its answer meanwhile
                hit = await self.reuse.stored_meanwhile(lookup)
                if hit is not None or regroup:  # a waiter leading now runs on its own
                    result = "served" if hit is not None else "alone"
                    self.metrics.reuse_coalesced.labels(model=backend.name, result=result).inc()
                return hit or lookup
            span.pause()
            noted = await self._note_waiting(ctx, req, backend, stream=stream)
            try:
                wait_s = self.reuse.settings.coalesce_wait_s
                landed = await flight.wait(wait_s)
                while not landed and not backend.remote and not flight.landed:
                    # A local model runs one generation at a time: a waiter that ran on its
                    # own now would queue behind the leader and then compute the same answer
                    # again. It waits on (its client leaving still cancels it); the bound is
                    # for upstreams.
                    landed = await flight.wait(wait_s)
            finally:
                # the row the request gets next removes the note (served, cancelled, failed);
                # one that generates opens its own, metered, before its model starts
                if noted:
                    self.ledger.close(ctx.request_id)
            span.resume()
            hit = await self.reuse.after_flight(lookup) if landed else None
            if hit is not None or not landed or flight.answered:
                break  # (an answer the leader did not store: not stored for them either)
            # the leader failed or left, storing nothing: the waiters regroup behind one of
            # them, which leads a new flight (five waiters of a leader whose client left each
            # ran the model: a trial), up to REGROUPS times
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
        return lookup  # on ctx: _lookup put it there

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
        usage = hit_usage(backend, req, lookup.entry)
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

    async def _commit_served(
        self,
        ctx: RequestContext,
        req: GenerationRequest,
        backend: Backend,
        lookup: Lookup,
        span: Span,
        reservation: Reservation,
        *,
        stream: bool,
    ) -> tuple[Lookup | None, tuple[EnergyReport, LedgerRow] | None]:
        """Commit the ledger row of ``lookup``'s hit before it is served (``_commit_hit``);
        an answer from memory no longer live is looked up again (``_look_again``), and a hit
        then committed. Returns the lookup that stands and, if it is a hit, its energy and
        row (a miss: it is generated). Errors are recorded and re-raised, ``reservation``
        settled then; else the caller settles it once the answer is served."""
        found: Lookup | None = lookup
        hit: tuple[EnergyReport, LedgerRow] | None = None
        try:
            hit = await self._commit_hit(
                ctx,
                req,
                backend,
                lookup,
                span,
                stream=stream,
                reservation=reservation if lookup.unchecked else None,
            )
            if hit is None:  # from memory, and no longer live: nothing was written
                found = await self._look_again(ctx, req, backend, lookup, span, reservation)
                if found is not None and found.entry is not None:
                    hit = await self._commit_hit(ctx, req, backend, found, span, stream=stream)
        except BaseException:
            self.limiter.settle(reservation, 0)
            raise
        return found, hit

    def _land(self, lookup: Lookup | None) -> None:
        """The request is done (answered, failed or cancelled): requests waiting for it run
        on their own if it stored nothing for them."""
        if self.reuse is not None:
            self.reuse.land(lookup)
