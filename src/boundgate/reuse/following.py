"""The reuse engine's side that follows other processes on the same store (worker processes,
replicas): ``follow`` keeps this process's maps, index and verifier in step with the store's
change log (``store.ChangeFeed``), so an answer stored or a label learnt by one is used by
all, and one revoked, superseded or evicted by one is dropped by all; and every process counts
the same semantic lookups, those whose ledger rows were written (``lookup_written`` for this
process's own, the log for the others'). A mixin of ``ReuseEngine`` (``engine.py``), whose
state it reads and writes."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from ..store import ChangeRow, LedgerRow, ObservationRow
from ..store.outages import OutageLog
from .verifier import Observation

if TYPE_CHECKING:
    from ..clock import Clock
    from ..settings import ReuseSettings
    from ..store import Store, StoredEntry
    from .documents import Documents
    from .embedder import Embedder
    from .lookup import EntryMeta
    from .verifier import Verifier

log = logging.getLogger("boundgate.reuse")

SYNC_BATCH = 1000  # changes read from the log at a time
PRUNE_EVERY_S = 3600.0  # how often a follower prunes the log of changes past retention
# own semantic lookups awaiting their echo from the log; beyond this many (a follower that
# cannot read the log, or none running) the oldest is forgotten and its echo counts again
OWN_LOOKUPS_MAX = 10_000


def _lookup_id(row: LedgerRow) -> int | None:
    """The id of the semantic lookup ``row`` carries (``extra["lookup_id"]``), if any."""
    value = row.extra.get("lookup_id")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class Following:
    """``follow``, ``catch_up`` and the change log's application (mixed into ``ReuseEngine``)."""

    if TYPE_CHECKING:  # what it uses of the engine
        settings: ReuseSettings
        clock: Clock
        store: Store
        embedder: Embedder
        verifier: Verifier
        documents: Documents
        _meta: dict[int, EntryMeta]
        _seen: int
        _sync_lock: asyncio.Lock
        _own_labels: set[tuple[float, int | None, str, str | None]]
        _own_lookups: dict[int, None]
        _own_entries: set[int]

        def admit_stored(self, e: StoredEntry) -> None: ...
        def count(self, name: str) -> None: ...
        async def forget(self, keys: list[int], delete: bool = True) -> None: ...
        def pin(self, key: int, doc_id: str) -> None: ...
        def _file_variant(self, exact: str, key: int) -> None: ...
        def _note_feedback(self, o: ObservationRow) -> None: ...

    async def follow(self) -> None:
        """Apply the changes other processes make to the store (run as a task while serving;
        cancelled at shutdown). Waits for the store's announcement (PostgreSQL ``NOTIFY``)
        or ``sync_interval_s`` (the poll SQLite needs), then reads the log after the last
        change applied: a dropped connection or a missed announcement costs latency, never
        a change."""
        interval = self.settings.sync_interval_s
        next_prune = 0.0
        outage = OutageLog(log, "reuse sync: reading the change log")
        while True:
            try:
                await self.catch_up()
                now = self.clock.time()
                if now >= next_prune:  # every follower does: pruning twice deletes nothing
                    await self.store.prune_changes(now - self.settings.sync_retention_s)
                    next_prune = now + PRUNE_EVERY_S
                outage.succeeded()
                await self.store.wait_for_changes(self._seen, interval)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the store unreachable for now: try again next interval
                outage.failed(exc)
                await asyncio.sleep(interval)

    async def catch_up(self) -> int:
        """Apply every change in the store's log after the last one applied; returns how
        many were read. Applying a change twice, or one made here, changes nothing."""
        read = 0
        async with self._sync_lock:
            while True:
                changes = await self.store.changes(self._seen, SYNC_BATCH)
                if changes:
                    await self._apply(changes)
                    self._seen = changes[-1].seq
                    read += len(changes)
                if len(changes) < SYNC_BATCH:
                    return read

    def lookup_writing(self, row: LedgerRow) -> None:
        """``row``, the ledger row of an answered request, carries a semantic lookup and is
        about to be written (``LedgerWriter``, as its ``LookupCounter``): the log's echo of
        that lookup (by its id, ``extra["lookup_id"]``) is this process's own from now on,
        even if it arrives before the write returns. A row without an id is left to the log."""
        lookup_id = _lookup_id(row)
        if lookup_id is None:
            return
        self._own_lookups[lookup_id] = None
        while len(self._own_lookups) > OWN_LOOKUPS_MAX:
            del self._own_lookups[next(iter(self._own_lookups))]

    def lookup_written(self, row: LedgerRow, written: bool) -> None:
        """The write of ``row`` (after ``lookup_writing``) ended. ``written``: committed, so
        its lookup counts in this process's verifier now, as in every other's when the log
        brings it (the store logs it with the row, in the same transaction). Not written
        (nothing stored, or the write failed): it counts nowhere; unless its echo came
        meanwhile, which says it was written after all, and then it counts here too. So a
        lookup counts in this process exactly when it is in the change log, once."""
        lookup_id = _lookup_id(row)
        if lookup_id is None:
            return
        echoed = lookup_id not in self._own_lookups
        if not written and not echoed:
            del self._own_lookups[lookup_id]  # no echo will come (if one does: counted)
            return
        density, pair = row.extra.get("density"), row.extra.get("pair_score")
        self.verifier.note_lookup(
            row.similarity,
            float(density) if isinstance(density, int | float) else 0.0,
            float(pair) if isinstance(pair, int | float) else None,
        )

    async def _apply(self, changes: list[ChangeRow]) -> None:
        labels = False
        for c in changes:
            if c.kind == "entry" and c.entry in self._own_entries:
                continue  # this process is storing it and admits it (``remember``)
            if c.kind == "entry" and c.entry is not None and c.entry not in self._meta:
                e = await self.store.get_entry(c.entry)
                if e is None or e.revoked:
                    continue  # deleted or revoked since (its own change follows)
                # exactly at once; by meaning with its vector, or once re-embedded if another
                # embedder made it (a replica or `docs import` on another configuration)
                self.admit_stored(e)
                self.count("synced_entry")
            elif c.kind == "delete" and c.entry is not None and c.entry in self._meta:
                await self.forget([c.entry], delete=False)
            elif c.kind == "entry-update" and c.entry is not None and c.entry in self._meta:
                e = await self.store.get_entry(c.entry)
                if e is None or e.revoked:
                    await self.forget([c.entry], delete=False)
                elif e.document_id:
                    self.pin(e.key, e.document_id)
            elif c.kind == "variant" and c.entry in self._meta and c.ref is not None:
                self._file_variant(c.ref, c.entry)
            elif c.kind == "label" and c.observation is not None:
                o = c.observation
                mine = (o.ts, o.entry, o.source, o.request_id)
                if mine in self._own_labels:
                    self._own_labels.discard(mine)  # learnt when it was made
                    continue
                label = Observation(
                    o.similarity, o.correct, o.source, o.entry, o.density, o.pair_score
                )
                self.verifier.add(label, recompute=False)
                self._note_feedback(o)
                labels = True
            elif c.kind == "lookup" and c.lookup is not None:
                if c.lookup_id is not None and c.lookup_id in self._own_lookups:
                    del self._own_lookups[c.lookup_id]  # counted here: ``lookup_written``
                    continue
                self.verifier.note_lookup(*c.lookup)
            elif c.kind == "document" and c.ref is not None:
                doc = await self.store.get_document(c.ref)
                if doc is not None:
                    self.documents.note_state(doc)
        if labels:
            self.verifier.recompute()
