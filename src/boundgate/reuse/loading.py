"""Start-up of the reuse engine: its ``Loading`` mixin (``engine.py``), whose state it fills.

``load`` rebuilds the in-memory maps from the store (entries, confirmed variants, labels and
the lookup history the verifier's h(t) counts), reloads each scope's saved ANN index where it
matches the store or builds it (``index_files.py``), and saves what had to be built, so that a
crash afterwards costs a replay of the tail, not another build. ``keep_index_saved`` saves
the changed indexes while serving. Entries whose vector another embedder made are matched
exactly from the start and queued for ``reembed.py``.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..store import ObservationRow, StoredEntry
from . import language
from .guards.lexicon import nouns
from .index_files import IndexLoad, LiveScope, fingerprint, load_index
from .verifier import Observation

if TYPE_CHECKING:
    from ..settings import ReuseSettings
    from ..store import Store
    from .documents import Documents
    from .embedder import Embedder
    from .index import ScopedIndex
    from .index_files import IndexFiles
    from .lookup import EntryMeta
    from .reembed import VectorState
    from .verifier import Verifier

log = logging.getLogger("boundgate.reuse")


class Loading:
    """``load``, ``save_index`` and ``keep_index_saved`` (mixed into ``ReuseEngine``)."""

    if TYPE_CHECKING:  # what it uses of the engine
        settings: ReuseSettings
        store: Store
        embedder: Embedder
        verifier: Verifier
        documents: Documents
        index: ScopedIndex
        index_files: IndexFiles | None
        index_load: IndexLoad | None
        _meta: dict[int, EntryMeta]
        _seen: int
        _unembedded: dict[int, str]

        def _add_meta(self, e: StoredEntry) -> EntryMeta: ...
        def _file_variant(self, exact: str, key: int) -> None: ...
        def _note_feedback(self, o: ObservationRow) -> None: ...
        def vector_state(self, e: StoredEntry) -> VectorState: ...

    async def load(self, progress: Callable[[int, int], None] | None = None) -> None:
        """Rebuild maps from the store (entries, observations, lookup history); reload the
        saved indexes, or build them, and save any that had to be built. The building runs
        on a worker thread (``progress`` is called from there).

        Every live entry is matched exactly from here on, whatever embedder made its vector;
        those whose vector is another embedder's (or that lack one they may have) are
        queued to be re-embedded, most recently used first, by ``keep_embedded`` (or
        ``embed_pending``) after start-up, which never waits for them (``reembed.py``)."""
        # the signing key first: a store whose documents name a key that is not here refuses
        # to start (``documents.load_signer``) before anything is loaded
        await self.documents.load_key()
        # documents and entries an older gateway left disagreeing, put right before the
        # entries are read (nothing revoked is ever loaded as servable)
        await self.documents.repair()
        # the log's head first: whatever commits while loading is applied again by
        # ``catch_up``, which is idempotent, and nothing is missed
        self._seen = await self.store.change_head()
        entries = await self.store.entries()
        await asyncio.to_thread(self._load_entries, entries, progress)
        del entries
        variants = await self.store.question_variants()
        observations = await self.store.observations()
        lookups = await self.store.lookup_similarities()
        await asyncio.to_thread(self._load_labels, variants, observations, lookups)
        await asyncio.to_thread(nouns)  # the guards' noun table, before the first request
        await asyncio.to_thread(language.warm)  # and the language identifier's model

    def _load_entries(
        self, entries: list[StoredEntry], progress: Callable[[int, int], None] | None
    ) -> None:
        live: dict[str, LiveScope] = {}
        unembedded: list[tuple[float, int, str]] = []  # (last use, key, what made its vector)
        for i, e in enumerate(entries):
            if e.revoked:  # never served again; lookups would drop it on sight
                continue
            meta = self._add_meta(e)
            state = self.vector_state(e)
            if state == "embed":  # another embedder's vector, or none yet
                source = sys.intern(e.embedder) if e.vector else ""  # one copy per name
                unembedded.append((meta.last_used, e.key, source))
            if state != "ours":
                continue  # matched exactly only (for now)
            scope = live.setdefault(e.scope, LiveScope([], [], []))
            scope.keys.append(e.key)
            scope.fingerprints.append(fingerprint(e.id))
            scope.vectors.append(e.vector)
            if progress is not None and i % 1000 == 0:
                progress(i, len(entries))
        self.index_load = load_index(self.index, self.index_files, live)
        self.index_load.waiting = len(unembedded)
        log.info("ANN index: %s", self.index_load.summary())
        if unembedded:
            unembedded.sort(reverse=True)  # the most recently used first
            self._unembedded.update((key, source) for _, key, source in unembedded)
            by_source = Counter(source or "no vector" for _, _, source in unembedded)
            log.info(
                "reuse: %d stored answers wait for a vector of %s (%s): matched exactly until "
                "they are re-embedded, in the background after start-up",
                len(unembedded),
                self.embedder.name,
                ", ".join(f"{n} from {src}" for src, n in sorted(by_source.items())),
            )
        if self.index_files is not None and self.index_load.rebuilt:
            self.save_index()  # a crash now costs a replay of the tail, not another build

    def _load_labels(
        self,
        variants: list[tuple[str, int]],
        observations: list[ObservationRow],
        lookups: list[tuple[float | None, float, float | None]],
    ) -> None:
        for exact, key in variants:
            if key in self._meta:
                self._file_variant(exact, key)
        for o in observations:
            self.verifier.add(
                Observation(o.similarity, o.correct, o.source, o.entry, o.density, o.pair_score),
                recompute=False,
            )
            self._note_feedback(o)
        for s, d, pr in lookups:
            self.verifier.note_lookup(s, d, pr)
        self.verifier.recompute()

    def save_index(self) -> int:
        """Save the indexes of the scopes changed since the last save (at shutdown).
        Returns how many were written; 0 without an index dir or before ``load``."""
        if self.index_files is None or self.index_load is None:
            return 0

        def fingerprint_of(key: int) -> int:
            meta = self._meta.get(key)  # None: being forgotten right now; dropped next start
            return fingerprint(meta.id) if meta is not None else 0

        return self.index_files.save(fingerprint_of)

    async def keep_index_saved(self) -> None:
        """While serving, save the changed indexes every ``index_save_interval_s`` (run as a
        task; cancelled at shutdown, which saves once more). A crash then costs the replay
        of at most one interval's new entries at the next start, not a rebuild."""
        interval = self.settings.index_save_interval_s
        if self.index_files is None or interval <= 0:
            return
        while True:
            await asyncio.sleep(interval)
            if not self.index.dirty():
                continue
            try:
                written = await asyncio.to_thread(self.save_index)
                log.info("ANN index: saved %d changed scopes", written)
            except Exception:  # the next interval (or shutdown) tries again
                log.exception("ANN index: periodic save failed")
