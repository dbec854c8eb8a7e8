"""Stored answers whose vector another embedder made: the reuse engine's ``Reembedding``
mixin (``engine.py``), whose state it reads and writes.

Every stored entry names the embedder that made its vector (``StoredEntry.embedder``).
Vectors of two embedders are not comparable (another model, often another dimension), so an
entry whose vector is not the current embedder's cannot be found by meaning as it is; its
answer is as good as ever. Such entries come from an operator changing ``reuse.embedder``
(and restarting), from ``boundgate docs import`` run with another configuration than the
server's, or from a replica on another configuration. Each is matched exactly as soon as it
is loaded, like every entry (exact matches need no vector), and is queued here to be
re-embedded with the current embedder: ``keep_embedded`` (a task of the server) takes the
queue in batches of ``EMBED_BATCH``, embeds each on a worker thread, adds it to the ANN index
there, and writes the vectors back to the store (``AnswerStore.set_entry_vectors``), so the
next start loads them as they are. An entry without a vector that may be matched by meaning
now (a question the last embedder could not read whole, say) gets one the same way. Until
its batch is done an entry is simply matched exactly only; start-up never waits for it.

The entry keeps its key, id, hits, askers, labels and document: it is the same answer, only
findable in another vector space, so the store logs no change for it and no process counts
it as a new answer. Processes on one store (workers, replicas) share the work: each batch
is read back from the store first and a vector another process wrote meanwhile is taken as
it is, and the write is a compare-and-set on the embedder the entry was read with, so two
processes doing it at once are harmless. Revoked entries are never re-embedded.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import threading
from collections import Counter
from typing import TYPE_CHECKING, Literal

import numpy as np

from ..store import EntryVector, StoredEntry
from .embedder import vector_bytes
from .scope import verbatim_scope

if TYPE_CHECKING:
    from ..store import Store
    from .embedder import Embedder, Vectors
    from .index import ScopedIndex
    from .lookup import EntryMeta

log = logging.getLogger("boundgate.reuse")

EMBED_BATCH = 64  # entries re-embedded (and written back) at a time
RETRY_S = 5.0  # after a failed batch (the store unreachable, say), the next try
PROGRESS_EVERY = 10_000  # a log line every this many re-embedded entries of one run

VectorState = Literal["ours", "exact", "embed"]


def _verbatim(e: StoredEntry) -> bool:
    try:
        doc = json.loads(e.scope_doc)
    except ValueError:
        return True  # unreadable: take no chance, exact only
    return isinstance(doc, dict) and verbatim_scope(doc)


class Reembedding:
    """``vector_state``, ``admit_stored``, ``embed_pending`` and ``keep_embedded`` (mixed into
    ``ReuseEngine``)."""

    if TYPE_CHECKING:  # what it uses of the engine
        store: Store
        embedder: Embedder
        index: ScopedIndex
        _meta: dict[int, EntryMeta]
        _lock: threading.Lock
        # entry key → the embedder of its stored vector ("" for none), waiting for this
        # embedder's vector, in the order they are to be done
        _unembedded: dict[int, str]
        _embed_wanted: asyncio.Event | None

        def admit(self, e: StoredEntry, vector: Vectors | None) -> None: ...
        def by_meaning(self, query: str, answer: str) -> bool: ...
        def _count_n(self, name: str, n: int) -> None: ...

    def vector_state(self, e: StoredEntry) -> VectorState:
        """How ``e`` is found: by its stored vector (``ours``: this embedder made it), exactly
        only by rule (``exact``: a question too long for the embedder or not in English, a
        text completion's prompt), or by meaning once it has a vector of this embedder
        (``embed``: its vector is another embedder's, or it has none and may have one)."""
        # a vector-less entry may be a text completion's prompt, verbatim: told from its
        # scope without the language identifier (as the load before re-embedding skipped it)
        if not e.vector and _verbatim(e):  # (an entry with a vector was never verbatim)
            return "exact"
        if not self.by_meaning(e.query, e.answer):
            return "exact"
        if e.vector and e.embedder == self.embedder.name:
            return "ours"
        return "embed"

    def admit_stored(self, e: StoredEntry) -> None:
        """Make an entry another process stored servable here (``follow``, an exact read):
        exactly at once, by meaning with its vector if this embedder made it, else once it
        is re-embedded (queued). ``e`` must not be revoked."""
        state = self.vector_state(e)
        self.admit(e, np.frombuffer(e.vector, dtype=np.float32) if state == "ours" else None)
        if state == "embed":
            self._unembedded[e.key] = e.embedder if e.vector else ""
            if self._embed_wanted is not None:
                self._embed_wanted.set()

    async def keep_embedded(self) -> None:
        """Re-embed what waits for a vector of this embedder (run as a task while serving;
        cancelled at shutdown): what start-up found at once, then whatever the change log or
        an exact read brings. A failed batch is tried again after ``RETRY_S``."""
        wanted = self._embed_wanted = asyncio.Event()
        try:
            while True:
                wanted.clear()
                if not self._unembedded:
                    await wanted.wait()
                    continue
                try:
                    await self.embed_pending()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("reuse: re-embedding stored answers failed; trying again")
                    await asyncio.sleep(RETRY_S)
        finally:
            self._embed_wanted = None

    async def embed_pending(self) -> int:
        """Give every queued entry a vector of this embedder, ``EMBED_BATCH`` at a time, each
        batch indexed as it is done; returns how many got one (written here or taken from
        another process's write). A batch that fails is queued again and the error raised."""
        done = elsewhere = 0
        next_progress = PROGRESS_EVERY
        sources: Counter[str] = Counter()  # what the vectors replaced were made by
        while self._unembedded:
            keys = list(itertools.islice(self._unembedded, EMBED_BATCH))
            batch = {k: self._unembedded.pop(k) for k in keys}
            try:
                replaced, taken = await self._embed_batch(keys)
            except BaseException:
                self._unembedded.update(batch)  # (after what was queued meanwhile)
                raise
            sources.update(replaced)
            done += len(replaced)
            elsewhere += taken
            self._count_n("reembedded", len(replaced))
            self._count_n("reembedded_elsewhere", taken)
            if done + elsewhere >= next_progress and self._unembedded:
                next_progress += PROGRESS_EVERY
                log.info(
                    "reuse: re-embedding stored answers: %d done, %d to go",
                    done + elsewhere,
                    len(self._unembedded),
                )
        if done or elsewhere:
            log.info(
                "reuse: re-embedded %d stored answers with %s (%s)%s",
                done,
                self.embedder.name,
                ", ".join(f"{n} from {src}" for src, n in sorted(sources.items())) or "none",
                f"; {elsewhere} more were re-embedded by another process" if elsewhere else "",
            )
        return done + elsewhere

    async def _embed_batch(self, keys: list[int]) -> tuple[list[str], int]:
        """Re-embed the entries ``keys`` as the store has them now. Returns, for each entry
        embedded here, what made the vector it replaced (an embedder's name, or "no
        vector"), and how many another process had re-embedded meanwhile."""
        todo: list[StoredEntry] = []
        ready: list[StoredEntry] = []
        for e in await self.store.get_entries(keys):
            meta = self._meta.get(e.key)
            if e.revoked or meta is None or meta.id != e.id:
                continue  # revoked or forgotten since (a revocation's change follows)
            state = self.vector_state(e)
            if state == "ours":
                ready.append(e)  # another process wrote this embedder's vector meanwhile
            elif state == "embed":
                todo.append(e)
        vectors = await asyncio.to_thread(self._embed_and_index, todo, ready)
        if todo:
            await self.store.set_entry_vectors(
                self.embedder.name,
                [
                    EntryVector(e.key, vector_bytes(v), replaces=e.embedder)
                    for e, v in zip(todo, vectors, strict=True)
                ],
            )
        return [e.embedder if e.vector else "no vector" for e in todo], len(ready)

    def _embed_and_index(self, todo: list[StoredEntry], ready: list[StoredEntry]) -> Vectors:
        """On a worker thread: embed the questions of ``todo`` and index them with the vectors
        of ``ready``; returns the vectors of ``todo``. An entry forgotten meanwhile (evicted,
        revoked, deleted) is not indexed: the check and the add hold the engine's lock, so a
        ``forget`` either comes first or removes it after."""
        vectors = (
            self.embedder.embed([e.query for e in todo])
            if todo
            else np.empty((0, self.embedder.dim), dtype=np.float32)
        )
        pairs = itertools.chain(
            zip(todo, vectors, strict=True),
            ((e, np.frombuffer(e.vector, dtype=np.float32)) for e in ready),
        )
        for e, v in pairs:
            with self._lock:
                meta = self._meta.get(e.key)
                if meta is not None and meta.id == e.id:
                    self.index.add(e.scope, e.key, v)
        return vectors
