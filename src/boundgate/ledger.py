"""The one ledger writer: a request's row, its metrics, and its commit to the store.

Completions (hits, misses, errors, cancellations) and embeddings build their rows here from
the request's context, its outcome, the energy it took and what the reuse layer decided. A
row is recorded in the store and observed by the Prometheus metrics, once per request;
``commit`` resolves after the store committed it (the caller answers the client only then),
``commit_soon`` records from a context that is being torn down.

A generation is noted before it starts (``open``, a write-ahead record: the row it would have
if this process died now, outcome ``interrupted``); the note is this process's under a lease
that ``keep_open_requests`` renews with the tokens counted so far, and the request's own row
removes it. Whichever process finds a note whose lease ran out (its process died) writes its
row (``recover``), so a request accepted by a process killed mid-answer is not lost.

A row that carries a semantic lookup (``extra["semantic_lookup"]``; only the rows of answered
requests do: a hit's, a fresh answer's) is what counts that lookup in the reuse verifier's
h(t): the store logs it for every process when the row is first written, and this writer
tells its ``LookupCounter`` (the reuse engine) around the write, so this process counts it
then too, and knows its echo from the log by the lookup's id.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

from .backends.base import Backend, GenerationRequest, Usage
from .clock import Clock
from .energy import EnergyReport
from .errors import ErrorCode, shown
from .metrics import Metrics
from .store import LedgerRow, LedgerStore, Release, StoredEntry, StoreUnavailableError
from .store.outages import OutageLog

if TYPE_CHECKING:
    from .gateway import RequestContext
    from .reuse.lookup import Lookup
    from .routing.ladder import Route


log = logging.getLogger("boundgate.ledger")


class _Counter(Protocol):
    def inc(self, amount: float = 1) -> None: ...


class LookupCounter(Protocol):
    """Who counts the semantic lookups this process writes (``ReuseEngine``)."""

    def lookup_writing(self, row: LedgerRow) -> None:
        """``row``, which carries a semantic lookup, is about to be written."""

    def lookup_written(self, row: LedgerRow, written: bool) -> None:
        """The write of ``row`` ended: ``written`` if the store committed it, False if it
        wrote nothing or failed."""


def _add(counter: _Counter, amount: float) -> None:
    """Add ``amount`` to a Prometheus counter if it is a finite number ≥ 0: a counter may not
    go down (prometheus-client raises), and a document imported before its figures were
    checked (``binding.parse``) may carry any number; the ledger row keeps it as it is."""
    if math.isfinite(amount) and amount >= 0:
        counter.inc(amount)
    else:
        log.warning("not added to a counter: %r (not a finite number >= 0)", amount)


# the row of a request whose process died before recording its own (docs/api.md#ledger)
INTERRUPTED = "interrupted"
INTERRUPTED_STATUS = 500
STORE_UNAVAILABLE_STATUS = 503  # a row the store's outage kept: what its client was told
MAX_UNWRITTEN = 10_000  # rows an outage keeps for writing, at most (``_keep_unwritten``)


def claims_nothing(row: LedgerRow) -> LedgerRow:
    """``row``, a request that was not answered (failed, cancelled, interrupted), without
    avoided energy: what reuse or right-sizing avoided counts only for an answer delivered
    whole (docs/energy.md). What its lookup decided stays (``reuse``, ``document_id``)."""
    row.avoided_wh = row.avoided_gco2 = 0.0
    row.extra.pop("avoided_method", None)
    row.rightsizing_avoided_wh = row.rightsizing_avoided_gco2 = 0.0
    return row


class LedgerWriter:
    def __init__(
        self,
        store: LedgerStore,
        metrics: Metrics,
        clock: Clock,
        grid_zone: str,
        *,
        lease_s: float,
        lookups: LookupCounter | None = None,
        on_recovered: Callable[[list[LedgerRow]], Awaitable[None]] | None = None,
        on_replaced: Callable[[list[LedgerRow]], Awaitable[None]] | None = None,
    ) -> None:
        """``lease_s``: how long an open request's note is vouched for without a renewal
        (``store.open_request_lease_s``; renewed every third of it). ``lookups``: told of
        every row carrying a semantic lookup that this writer writes (the reuse engine).
        ``on_recovered``: given the ``interrupted`` rows :meth:`recover` wrote (the limiter
        charges their tokens to their keys' budgets). ``on_replaced``: given the
        ``interrupted`` rows a process (a live peer, after the note's lease lapsed) made of
        this process's requests, which their own rows replaced (the limiter takes back what
        ``on_recovered`` charged: the request's own settle charges its whole usage)."""
        self.store = store
        self.lookups = lookups
        self.on_recovered = on_recovered
        self.on_replaced = on_replaced
        self.metrics = metrics
        self.clock = clock
        self.grid_zone = grid_zone
        self.lease_s = lease_s
        # who holds this process's notes: host, pid and a fresh id (pids are reused)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self._open: dict[str, LedgerRow] = {}  # request id → its note's row, kept current
        # request id → until when (clock time) its note's lease is known renewed: past it, a
        # peer may have recovered the note as interrupted (``_record``)
        self._vouched: dict[str, float] = {}
        # request ids whose note was closed after its lease ran out: their rows, recorded
        # after the close (a stream its client left closes first), still read what they
        # replace (a re-check: a cancelled stream's peer charge stood)
        self._closed_lapsed: dict[str, None] = {}
        # request id → what sets its note's energy so far (its generation's meter)
        self._progress: dict[str, Callable[[LedgerRow], None]] = {}
        self._background: set[asyncio.Task[None]] = set()
        # request id → the row of a request whose commit found the store out of reach, as
        # its client was answered (503 store_unavailable), written once the store answers
        self._unwritten: dict[str, LedgerRow] = {}

    def row(
        self,
        ctx: RequestContext,
        req: GenerationRequest | None,
        backend: Backend | None,
        *,
        stream: bool,
        usage: Usage | None = None,
        energy: EnergyReport | None = None,
        outcome: str = "ok",
        status: int = 200,
        error_code: str | None = None,
        lookup: Lookup | None = None,
        model: str | None = None,
        backend_kind: str | None = None,
        route: Route | None = None,
    ) -> LedgerRow:
        """The row of the request ``ctx``. ``model`` and ``backend_kind`` name what served it
        when that is not a ``Backend`` (embeddings). ``lookup``: what reuse decided (also on
        the row of a request that failed or was cancelled after its lookup); a semantic one
        is written into the row with its id (``extra["semantic_lookup"]``, ``"lookup_id"``),
        and the row then counts it in the verifier (module docstring), only on the row of a
        request that was answered (``outcome`` ok) or served a stored answer."""
        latency_ms = (self.clock.monotonic() - ctx.started_mono) * 1000.0
        if model is None:
            # a name no backend has is the client's, kept as errors quote it (a re-check's
            # 100,000-character model name filled `boundgate report --by model`)
            model = backend.name if backend else (shown(req.model) if req and req.model else None)
        if backend_kind is None:
            backend_kind = backend.kind if backend else None
        row = LedgerRow(
            id=ctx.request_id,
            ts=ctx.started,
            tenant=ctx.tenant.name,
            endpoint=ctx.endpoint,
            model=model,
            backend=backend_kind,
            key_id=ctx.tenant.key_id,
            user=req.user if req else None,
            stream=stream,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            reasoning_tokens=usage.reasoning_tokens if usage else 0,
            outcome=outcome,
            status=status,
            error_code=error_code,
            latency_ms=latency_ms,
            grid_zone=self.grid_zone,
        )
        if ctx.batch_line is not None:
            row.extra["batch_id"], row.extra["custom_id"] = ctx.batch_line
        if energy is not None:
            row.wh, row.wh_low, row.wh_high = energy.wh, energy.wh_low, energy.wh_high
            row.method = energy.method
            row.gco2 = energy.gco2
            row.gco2_per_kwh = energy.gco2_per_kwh
        if lookup is not None:
            for name, value in lookup.ledger_fields(row.gco2_per_kwh).items():
                if name == "avoided_method":
                    if value is not None:
                        row.extra["avoided_method"] = value
                else:
                    setattr(row, name, value)
            if lookup.semantic and (outcome == "ok" or lookup.entry is not None):
                row.extra["semantic_lookup"] = 1
                row.extra["lookup_id"] = lookup.id
                if lookup.density:
                    row.extra["density"] = round(lookup.density, 6)
                if lookup.pair is not None:
                    row.extra["pair_score"] = round(lookup.pair, 6)
            if lookup.novel:
                row.extra["novel"] = 1
        route = route or ctx.route
        if route is not None:
            row.task, row.route = route.plan.task, route.header()
            if route.answering_model is not None:
                row.counterfactual_wh = route.counterfactual_wh
                row.rightsizing_avoided_wh = route.avoided_wh
                row.rightsizing_avoided_gco2 = route.avoided_gco2
        if outcome != "ok":
            claims_nothing(row)
        return row

    @staticmethod
    def cancelled(row: LedgerRow) -> LedgerRow:
        """A copy of ``row``, an answered request's, for a client that left before its
        answer was whole (during a replay): cancelled (499), claiming no avoided energy."""
        copy = dataclasses.replace(row, outcome="cancelled", status=499, extra=dict(row.extra))
        return claims_nothing(copy)

    def observe(self, row: LedgerRow) -> None:
        # Only configured model names become label values: client input must not grow series.
        model = row.model if row.backend is not None and row.model else "unknown"
        m = self.metrics
        labels = {"model": model, "outcome": row.outcome, "status": str(row.status)}
        if m.tenant_label:
            labels["tenant"] = row.tenant
        m.requests.labels(**labels).inc()
        m.latency.labels(model=model).observe(row.latency_ms / 1000.0)
        if row.outcome == INTERRUPTED:  # its process died before counting what its model did
            self.processed(model, Usage(row.prompt_tokens, row.completion_tokens))
        if row.wh:
            _add(m.energy_j.labels(kind="spent", method=row.method), row.wh * 3600.0)
            _add(m.carbon_g.labels(kind="spent"), row.gco2)
        if row.reuse is not None:
            m.reuse.labels(model=model, result=row.reuse).inc()
        if row.avoided_wh:
            method = str(row.extra.get("avoided_method", "estimate"))
            _add(m.energy_j.labels(kind="avoided", method=method), row.avoided_wh * 3600.0)
            _add(m.carbon_g.labels(kind="avoided"), row.avoided_gco2)
        if row.route is not None and row.task is not None and row.outcome == "ok":
            m.routing_requests.labels(task=row.task, model=model).inc()
        if row.rightsizing_avoided_wh:
            _add(m.routing_avoided_j, row.rightsizing_avoided_wh * 3600.0)

    def processed(self, model: str, usage: Usage) -> None:
        """Count ``usage``, tokens ``model`` processed (a generation's, whatever its end; an
        embedding's), in ``boundgate_tokens_total``. A row's tokens are not what counts: a
        reused answer's were replayed, not processed, and an auto request's rungs each
        processed their own (the gateway counts them as they end)."""
        m = self.metrics
        if usage.prompt_tokens > 0:
            m.tokens.labels(model=model, direction="input").inc(usage.prompt_tokens)
        if usage.completion_tokens > 0:
            m.tokens.labels(model=model, direction="output").inc(usage.completion_tokens)

    # --- open requests (write-ahead notes) ------------------------------------------------
    async def open(
        self, row: LedgerRow, progress: Callable[[LedgerRow], None] | None = None
    ) -> LedgerRow:
        """Note request ``row.id`` as in progress before its generation starts (and before a
        stream's first byte), with ``row`` turned into the row it gets should this process die
        first: outcome ``interrupted``, status 500, energy as ``progress`` sets it at each
        renewal (the generation's own meter read so far; none without it).
        Returns once the note is committed; returns that row, which the caller keeps current
        (its ``completion_tokens``) for the renewals. The request's own row closes the
        note."""
        row.outcome, row.status, row.error_code = INTERRUPTED, INTERRUPTED_STATUS, INTERRUPTED
        if progress is not None:
            self._progress[row.id] = progress
        self._refresh(row)
        self._open[row.id] = row
        until = self.clock.time() + self.lease_s
        try:
            await self.store.open_request(row, self.owner, until)
        except BaseException:
            self.close(row.id)
            raise
        self._vouched[row.id] = until
        return row

    def opened(self, request_id: str) -> LedgerRow | None:
        """The row of request ``request_id``'s note, while this process renews it."""
        return self._open.get(request_id)

    def close(self, request_id: str) -> None:
        """Stop renewing request ``request_id``'s note (its own row is recorded, or is being
        recorded, which removes the note; or it failed in a way that records none, and then
        the note becomes its row once the lease runs out)."""
        if self._lapsed(request_id):
            self._closed_lapsed[request_id] = None
            while len(self._closed_lapsed) > MAX_UNWRITTEN:
                del self._closed_lapsed[next(iter(self._closed_lapsed))]
        self._open.pop(request_id, None)
        self._progress.pop(request_id, None)
        self._vouched.pop(request_id, None)

    def _refresh(self, row: LedgerRow) -> None:
        row.latency_ms = max(0.0, (self.clock.time() - row.ts) * 1000.0)
        progress = self._progress.get(row.id)
        if progress is not None:
            try:
                progress(row)
            except Exception:  # an estimate is best effort: the row is what matters
                log.exception("no energy estimate for open request %s", row.id)

    async def renew(self) -> None:
        """Extend the leases of this process's open requests, with their tokens so far. A
        note whose lease ran out before the renewal was stored stays counted as lapsed
        (``_lapsed``): a peer may have made it its ``interrupted`` row already, and the
        renewal then found nothing to renew (a re-check stopped a process with SIGSTOP past
        its lease: once it ran again its renewal counted the lease as kept, so the request's
        own row never took back the peer's charge, and its tokens were charged twice)."""
        if not self._open:
            return
        rows = list(self._open.values())
        for row in rows:
            self._refresh(row)
        until = self.clock.time() + self.lease_s
        await self.store.renew_requests(self.owner, until, rows)
        renewed_at = self.clock.time()
        for row in rows:
            if self._vouched.get(row.id, -math.inf) > renewed_at:
                self._vouched[row.id] = until

    async def recover(self) -> list[LedgerRow]:
        """Write the rows of requests whose process died (their notes' leases ran out)."""
        rows = await self.store.recover_requests(self.clock.time())
        if rows and self.on_recovered is not None:
            try:
                await self.on_recovered(rows)
            except Exception:  # the rows stand; their tokens go uncharged, as before
                log.exception("interrupted requests: charging their tokens failed")
        for row in rows:
            self.observe(row)
            log.warning(
                "request %s (%s, %s) was interrupted: its process stopped renewing its note "
                "before recording its row (the process died, or could not reach the store); "
                "ledgered as %s",
                row.id,
                row.tenant,
                row.model,
                INTERRUPTED,
            )
        return rows

    def _keep_unwritten(self, row: LedgerRow) -> None:
        """``row`` could not be committed, the store out of reach: its client is answered
        503 ``store_unavailable`` (a stream: as its last event), and the row says so,
        keeping the tokens and energy the request used, to be written once the store
        answers (:meth:`write_unwritten`). Without this its note became its row, as
        ``interrupted`` with the tokens of its last renewal (a trial's outage: 0 tokens,
        0 Wh for an answer delivered in full). At most ``MAX_UNWRITTEN`` are kept, the
        oldest given up first (their notes still become their rows). Its semantic lookup is
        not counted (a request answered 503 counts nowhere, docs/reuse.md "Which lookups
        count")."""
        self._unwritten[row.id] = dataclasses.replace(
            row,
            outcome="error",
            status=STORE_UNAVAILABLE_STATUS,
            error_code=ErrorCode.STORE_UNAVAILABLE,
            extra={k: v for k, v in row.extra.items() if k != "semantic_lookup"},
        )
        while len(self._unwritten) > MAX_UNWRITTEN:
            lost = next(iter(self._unwritten))
            del self._unwritten[lost]
            log.error("request %s: its row was not kept for writing (too many)", lost)

    async def write_unwritten(self) -> None:
        """Write the rows the store's outage kept (:meth:`_keep_unwritten`), oldest first;
        each replaces the request's note, or the ``interrupted`` row a process made of it
        meanwhile. Stops at the first the store still refuses."""
        for row in list(self._unwritten.values()):
            # kept through an outage: a peer may have recovered its note meanwhile
            await self._record(row, lapsed=True)
            del self._unwritten[row.id]
            self.observe(row)

    async def keep_open_requests(self) -> None:
        """Write the rows an outage kept, renew this process's notes and recover dead
        processes' every third of the lease (the server runs this in the background from
        start-up on)."""
        # the kept rows first, so that their notes are not recovered as interrupted; its
        # own renewed before any recovery
        steps = (self.write_unwritten, self.renew, self.recover)
        outages = [OutageLog(log, f"open requests: {step.__name__}") for step in steps]
        while True:
            for step, outage in zip(steps, outages, strict=True):
                try:
                    await step()
                    outage.succeeded()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the store restarting: try again next time
                    outage.failed(exc)
                    if step == self.write_unwritten:
                        break  # never recover the notes of rows it still holds
            await asyncio.sleep(self.lease_s / 3)

    # --- commits -------------------------------------------------------------------------
    def _counts_lookup(self, row: LedgerRow) -> bool:
        """Whether ``row`` carries a semantic lookup to count; if so, tell ``lookups``."""
        if self.lookups is None or not row.extra.get("semantic_lookup"):
            return False
        self.lookups.lookup_writing(row)
        return True

    async def commit(self, row: LedgerRow, *, observe: bool = True) -> None:
        """Record ``row``; returns once the store committed it, and observes it then.
        ``observe`` False: the caller observes it, or the row that replaces it, later.

        A request is counted once whatever ends its commit. The caller is cancelled meanwhile
        (its client left): with ``observe``, the row stands, recorded in the background
        (again: a row replaces the one of its id) and observed now; without, the caller
        writes the row that replaces it (``commit_soon``: a cancelled one), which is
        observed. The commit fails: the row is not observed, and the request's note, if it
        has one, becomes its row and is counted when recovered (``recover``); when it fails
        because the store is out of reach, the row (saying so: 503 ``store_unavailable``,
        with the tokens and energy used) is written once the store answers, replacing the
        note or the row made of it (``_keep_unwritten``)."""
        counts = self._counts_lookup(row)
        written = False
        try:
            await self._record(row, lapsed=self._lapsed(row.id))
            written = True
        except asyncio.CancelledError:
            if observe:
                self.observe(row)
                self._record_soon(row, False)
            raise
        except StoreUnavailableError:
            self._keep_unwritten(row)
            raise
        finally:  # not recorded: the note, no longer renewed, becomes the row
            self.close(row.id)
            if counts:
                assert self.lookups is not None
                self.lookups.lookup_written(row, written)
        if observe:
            self.observe(row)

    async def commit_hit(
        self,
        row: LedgerRow,
        entry: StoredEntry,
        release: Release | None = None,
        *,
        observe: bool = True,
    ) -> bool:
        """Record ``row``, a request answered with ``entry``, if that entry is still live,
        giving back the holds of ``release`` (``LedgerStore.record_hit``: one statement);
        observe it only then (``observe`` False: the caller does, later). False: nothing was
        written or released, and the answer must not be served."""
        counts = self._counts_lookup(row)
        written = False
        try:
            written = await self.store.record_hit(row, entry, release)
        finally:
            if counts:
                assert self.lookups is not None
                self.lookups.lookup_written(row, written)
        if not written:
            return False
        if observe:
            self.observe(row)
        self.close(row.id)
        return True

    def commit_soon(self, row: LedgerRow) -> None:
        """Record from a context that is being torn down (client gone): don't await it here."""
        self.observe(row)
        self._record_soon(row, self._counts_lookup(row))
        self.close(row.id)

    def amend_soon(self, row: LedgerRow) -> None:
        """Replace the committed row of the same request id with ``row`` (a streamed hit whose
        client left during the replay: it was committed as served, unobserved, before the
        replay began), from a context being torn down. Observed now, in place of the row it
        replaces; its lookup is not counted again (it was when the first row was written; the
        store logs no second one for a row replaced under its lookup's id)."""
        self.observe(row)
        self._record_soon(row, False)

    def _lapsed(self, request_id: str) -> bool:
        """Whether request ``request_id``'s note may have been recovered by another process:
        its lease is not known renewed up to now (a stalled loop, an outage), also when the
        note was closed since."""
        if request_id in self._closed_lapsed:
            return True
        until = self._vouched.get(request_id)
        return until is not None and self.clock.time() >= until

    async def _record(self, row: LedgerRow, *, lapsed: bool) -> None:
        """Record ``row``. ``lapsed``: its note may have been recovered meanwhile (the
        lease ran out unrenewed); then the row it replaces is read first, and if that was
        an ``interrupted`` row a process made of the note, ``on_replaced`` is told (a
        replicas trial: the peer's charge of the note's tokens stood beside the request's
        own settle of its whole usage, 683 tokens counted against 552 ledgered)."""
        before = await self.store.get_row(row.id) if lapsed else None
        await self.store.record(row)
        self._closed_lapsed.pop(row.id, None)
        if before is None or before.outcome != INTERRUPTED or self.on_replaced is None:
            return
        try:
            await self.on_replaced([before])
        except Exception:  # the row stands; the charge stays counted twice, as before
            log.exception("request %s: taking back its interrupted row's charge failed", row.id)

    def _record_soon(self, row: LedgerRow, counts: bool) -> None:
        task = asyncio.get_running_loop().create_task(
            self._record(row, lapsed=self._lapsed(row.id))
        )
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        if counts:
            lookups = self.lookups
            assert lookups is not None

            def written(t: asyncio.Task[None]) -> None:
                lookups.lookup_written(row, not t.cancelled() and t.exception() is None)

            task.add_done_callback(written)

    @property
    def idle(self) -> bool:
        """Nothing started in the background is still running (``settled``)."""
        return not self._background

    async def settled(self) -> None:
        """Wait until the rows recorded in the background so far are written (and their
        lookups counted, ``lookup_written``)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    async def drain(self) -> None:
        """Wait for rows recorded in the background (shutdown, tests), and try the rows an
        outage kept once more."""
        await self.settled()
        if self._unwritten:
            try:
                await self.write_unwritten()
            except Exception as exc:  # their notes become their rows
                log.warning("%d rows the store's outage kept were not written: %s",
                            len(self._unwritten), exc)  # fmt: skip
