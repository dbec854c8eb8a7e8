"""The reuse layer the gateway calls: look up before routing, remember after generating.

``lookup`` runs the pipeline of ``docs/reuse.md``: policy → scope key → exact match →
semantic candidates (per-scope ANN) → guards → verifier. ``remember`` files a fresh answer
under its scope; ``settle`` compares a fresh answer with the candidate that was not served
(below threshold, or sampled for verification) and teaches the verifier (``labels.py``, a
mixin; ``lookup.py`` holds what a lookup returns). State lives in the
store; the in-memory maps are rebuilt from it at start-up, and the per-scope indexes are
reloaded from their saved files where those match the store (``index_files.py``).

Several gateways on one store (worker processes, replicas): ``follow`` (``following.py``, a
mixin) keeps this process's
maps, index and verifier in step with the store's change log (``store.ChangeFeed``), so an
answer stored or a label learnt by one is used by all, and one revoked, superseded or
evicted by one is dropped by all (a hit re-reads its entry from the store anyway, so a
revoked or deleted answer is never served, even before the change arrives).

Entries whose vector another embedder made (``reuse.embedder`` changed, ``docs import`` under
another configuration) are matched exactly at once and re-embedded in the background
(``reembed.py``, a mixin: ``keep_embedded``), then found by meaning too.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import logging
import math
import random
import sys
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from ..backends.base import Completion, GenerationRequest
from ..clock import Clock, SystemClock
from ..scheduler.jobs import JobQueue
from ..settings import ReuseSettings
from ..store import ObservationRow, Store, StoredEntry
from .binding import Signer
from .documents import Documents
from .embedder import Embedder, Vectors, vector_bytes
from .exact import ExactMap, slot_of
from .flight import Flight, Flights
from .following import Following
from .guards import compare
from .guards.lexicon import nouns
from .index import IndexParams, Neighbour, ScopedIndex
from .index_files import IndexFiles, IndexLoad, LiveScope, fingerprint, load_index
from .labels import Labelling
from .language import reads_english
from .lookup import EntryMeta, Lookup, sampled_request
from .pair import PairScorer
from .policy import Mode, Plan, TimeSensitivity, plan
from .reembed import Reembedding
from .scope import ReuseKey, answer_fits, reuse_key
from .scoring import Evidence
from .stored import request_json
from .verifier import Observation, Verdict, Verifier

log = logging.getLogger("boundgate.reuse")

HIT_FLUSH_S = 1.0  # how often hit counts are written to the store
# stored answers kept in memory for lookups that leave the live check to the ledger row
# (``lookup(..., check_live=False)``); beyond this many, the least recently served goes
ANSWERS_KEPT = 1024
# what ``stats(tenant)`` leaves out for a non-admin key: counts of every tenant's traffic
TENANT_HIDDEN_STATS = (
    "index_load",
    "outcomes",
    "observations",
    "observations_above_threshold",
    "observations_by_source",
    "semantic_lookups",
    "hit_precision",
    "vectors_pending",
)


def filed_tokens(completion: Completion, max_tokens: int) -> int:
    """The completion tokens an answer is filed with: its own count, except that an answer cut
    by the request's limit (``length``) is filed at that limit, the one it serves
    (``scope.answer_fits``): llama.cpp may generate a token past the limit to finish a
    character of several tokens ("Give me three emoji", limit 14: 15 tokens), and an answer
    filed at 15 would serve no request."""
    if completion.finish_reason == "length" and max_tokens > 0:
        return max_tokens
    return completion.usage.completion_tokens


class ReuseEngine(Following, Labelling, Reembedding):
    def __init__(
        self,
        *,
        store: Store,
        embedder: Embedder,
        verifier: Verifier,
        settings: ReuseSettings,
        rebind_window_s: float,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        signer: Signer | None = None,
        jobs: JobQueue | None = None,
        index_dir: Path | None = None,
        pair_scorer: PairScorer | None = None,
    ) -> None:
        """``settings``: the ``[reuse]`` section (what is not passed as a part is read from it;
        ``reuse.scorer`` and ``embedder`` are resolved by the caller).
        ``signer``, ``jobs``, ``rebind_window_s``: for ``documents`` (``documents.py``).
        ``index_dir``: where the ANN indexes are saved between runs (None: not saved).
        ``pair_scorer``: scores the guard survivors when the verifier's scorer uses it."""
        self.store = store
        self.pair_scorer = pair_scorer
        if verifier.scorer.uses_pair and pair_scorer is None:
            raise ValueError("the verifier's scorer needs a pair scorer")
        self.embedder = embedder
        self.verifier = verifier
        self.settings = settings
        self.clock = clock or SystemClock()
        self.rng = rng or random.Random()
        self.time_sensitive = (
            TimeSensitivity(self.settings.time_sensitive_pattern)
            if self.settings.time_sensitive_pattern
            else TimeSensitivity()
        )
        self.index = ScopedIndex(embedder.dim, IndexParams.of(settings))
        self.index_files = (
            IndexFiles(index_dir, embedder=embedder.name, index=self.index)
            if index_dir is not None
            else None
        )
        self.index_load: IndexLoad | None = None  # what start-up did with the saved indexes
        self._meta: dict[int, EntryMeta] = {}
        self._by_id: dict[str, int] = {}
        self._exact = ExactMap()  # exact hash → the entries that may serve it (exact.py)
        self._lock = threading.Lock()
        self._seen = 0  # the last change of the store's log applied here
        self._sync_lock = asyncio.Lock()
        self._own_labels: set[tuple[float, int | None, str, str | None]] = set()
        # ids of the semantic lookups this process counted (or is writing), until the change
        # log echoes them (``following.py``), oldest first
        self._own_lookups: dict[int, None] = {}
        self._feedback_seen: set[str] = set()  # requests whose feedback was learned
        self._feedback_noted: set[str] = set()  # ... whose "wrong" was noted (labels.py)
        self._counters_pruned_at = -math.inf  # old days' feedback counters (labels.py)
        self._variants: dict[int, set[str]] = {}  # entry → exact hashes of confirmed variants
        self._background: set[asyncio.Task[None]] = set()
        self._hits: dict[int, tuple[int, float]] = {}  # entry → hits not yet written, last
        self._answers: OrderedDict[int, StoredEntry] = OrderedDict()  # see ANSWERS_KEPT
        self._hit_flush: asyncio.Task[None] | None = None
        # entries waiting for a vector of this embedder → what made theirs (reembed.py)
        self._unembedded: dict[int, str] = {}
        self._embed_wanted: asyncio.Event | None = None  # set by ``keep_embedded`` while it runs
        self.counters: dict[str, int] = {}
        self.flights = Flights()  # identical misses being computed here (flight.py)
        self.documents = Documents(self, signer=signer, jobs=jobs, rebind_window_s=rebind_window_s)

    # --- start-up -------------------------------------------------------------------------
    async def load(self, progress: Callable[[int, int], None] | None = None) -> None:
        """Rebuild maps from the store (entries, observations, lookup history); reload the
        saved indexes, or build them, and save any that had to be built. The building runs
        on a worker thread (``progress`` is called from there).

        Every live entry is matched exactly from here on, whatever embedder made its vector;
        those whose vector is another embedder's (or that lack one they may have) are
        queued to be re-embedded, most recently used first, by ``keep_embedded`` (or
        ``embed_pending``) after start-up, which never waits for them (``reembed.py``)."""
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

    def admit(self, e: StoredEntry, vector: Vectors | None) -> None:
        """Make a newly stored entry servable: exactly, and by meaning if it has a vector
        (``None``: longer than the embedder reads, see ``Embedder.fits``)."""
        self._add_meta(e)
        if vector is not None:
            self.index.add(e.scope, e.key, vector)

    def _add_meta(self, e: StoredEntry) -> EntryMeta:
        meta = EntryMeta(
            key=e.key,
            id=e.id,
            scope=e.scope,
            exact=e.exact,
            query=e.query,
            created=e.created,
            cost_wh=e.cost_wh,
            cost_gco2=e.cost_gco2,
            size=len(e.answer.encode()) + len(e.query.encode()) + len(e.vector) + 256,
            hits=e.hits,
            last_used=e.last_hit or e.created,
            pinned=e.document_id is not None,
            document=e.document_id,
            finish_reason=e.finish_reason,
            completion_tokens=e.completion_tokens,
            tenant=e.tenant,
            sampled=sampled_request(e.request),
        )
        with self._lock:
            self._meta[e.key] = meta
            self._by_id[e.id] = e.key
            if e.document_id:
                self._by_id[e.document_id] = e.key
            slot = slot_of(e.finish_reason, e.completion_tokens)
            self._exact.put(e.exact, e.key, slot, e.created, newer=True)
        return meta

    def _file_variant(self, exact: str, key: int) -> None:
        """A confirmed variant: ``exact`` is served entry ``key``, in the entry's slot."""
        meta = self._meta[key]
        with self._lock:
            slot = slot_of(meta.finish_reason, meta.completion_tokens)
            self._exact.put(exact, key, slot, meta.created, newer=False)
            self._variants.setdefault(key, set()).add(exact)

    def __len__(self) -> int:
        return len(self._meta)

    def entry_key(self, public_id: str) -> int | None:
        """The entry behind an answer id (ans_…) or a bound document id (doc_…)."""
        return self._by_id.get(public_id)

    def count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    def meta(self, key: int) -> EntryMeta | None:
        return self._meta.get(key)

    def pin(self, key: int, doc_id: str) -> None:
        """The entry is bound to ``doc_id``: found by it, never evicted."""
        meta = self._meta.get(key)
        self._answers.pop(key, None)  # its document_id changed
        if meta is not None:
            meta.document, meta.pinned = doc_id, True
            self._by_id[doc_id] = key

    # --- lookup ---------------------------------------------------------------------------
    def plan_for(
        self,
        req: GenerationRequest,
        *,
        tenant: str,
        model_version: str,
        endpoint: str,
        cache_control: str | None,
    ) -> tuple[Plan, ReuseKey | None]:
        key = reuse_key(req, tenant=tenant, model_version=model_version, endpoint=endpoint)
        has_tools = any(k in req.passthrough for k in ("tools", "functions"))
        p = plan(
            temperature=req.temperature,
            max_temperature=self.settings.max_temperature,
            query=key.query if key is not None else None,
            has_tools=has_tools,
            cache_control=cache_control,
            options=req.options,
            time_sensitive=self.time_sensitive,
            time_sensitive_max_age_s=self.settings.time_sensitive_max_age_s,
        )
        return p, key

    def _fresh(self, meta: EntryMeta, p: Plan, now: float) -> bool:
        return p.max_age_s is None or now - meta.created <= p.max_age_s

    def by_meaning(self, query: str) -> bool:
        """Whether a stored question may be found by meaning: its embedding covers all of it
        (``Embedder.fits``) and it is in the language the guards and the pair model read
        (``language.reads_english``); else it is matched exactly only."""
        return self.embedder.fits(query) and reads_english(query)

    async def embed(self, texts: list[str]) -> Vectors:
        return await asyncio.to_thread(self.embedder.embed, texts)

    async def lookup(
        self,
        p: Plan,
        key: ReuseKey | None,
        stale_keys: tuple[ReuseKey, ...] = (),
        *,
        check_live: bool = True,
    ) -> Lookup:
        """Exact, then semantic, in the request's scope; then bound documents of earlier
        versions of the model (served marked ``stale`` while they are rebound).

        ``check_live``: a hit's entry is read from the store, so an answer revoked by any
        process is never returned. False: an answer served before may come from memory
        unchecked (``Lookup.unchecked``); the caller then writes the request's ledger row with
        ``LedgerStore.record_hit``, which writes it only if the entry is still live and
        unchanged, in the same statement, and must not serve the answer otherwise (one round
        trip less per hit on the response path).

        A semantic lookup (``Lookup.semantic``) is not counted in the verifier's h(t) here:
        it counts once its request's ledger row is written carrying it (``lookup_written``),
        and a request that gets no answer writes none."""
        if key is None or p.lookup is Mode.OFF:
            self.count("bypass")
            return Lookup(p, key, "bypass")
        now = self.clock.time()
        out = await self._search(p, key, now, check_live=check_live)
        if not out.hit and stale_keys and self.settings.stale_policy == "stale-while-rebind":
            for sk in stale_keys:
                alt = await self._search(
                    p, sk, now, stale=True, vector=out.vector, check_live=check_live
                )
                if alt.entry is not None:
                    out.entry, out.status, out.similarity = alt.entry, "stale", alt.similarity
                    out.unchecked = alt.unchecked
                    out.density, out.pair = alt.density, alt.pair
                    out.candidate, out.verdict = None, None
                    break
        self.count(out.status if out.verdict is not Verdict.VERIFY else "verify")
        return out

    async def _entry_if_live(
        self, meta: EntryMeta, check_live: bool = True
    ) -> tuple[StoredEntry | None, bool]:
        """The stored entry, unless it was revoked (possibly by another process), and
        whether it came from memory unchecked (only when not ``check_live``)."""
        if not check_live:
            kept = self._answers.get(meta.key)
            if kept is not None:
                self._answers.move_to_end(meta.key)
                return replace(kept), True
        entry = await self.store.get_entry(meta.key)
        if entry is None or entry.revoked:
            await self.forget([meta.key], delete=False)
            return None, False
        if entry.document_id and not meta.document:
            meta.document, meta.pinned = entry.document_id, True
        self._answers[meta.key] = replace(entry)
        self._answers.move_to_end(meta.key)
        while len(self._answers) > ANSWERS_KEPT:
            self._answers.popitem(last=False)
        return entry, False

    def drop_answer(self, key: int) -> None:
        """Forget the copy of entry ``key`` kept in memory (``record_hit`` found it revoked
        or changed): the next lookup reads the store. Counted as ``dropped_answer``."""
        self._answers.pop(key, None)
        self.count("dropped_answer")

    async def _search(
        self,
        p: Plan,
        key: ReuseKey,
        now: float,
        *,
        stale: bool = False,
        vector: Vectors | None = None,
        check_live: bool = True,
    ) -> Lookup:
        admissible = self._admissible(p, key, now, stale=stale)
        hit = await self._exact_hit(p, key, admissible, stale=stale, check_live=check_live)
        if hit is not None:
            return hit
        if p.lookup is not Mode.SEMANTIC or not self.settings.semantic or key.verbatim:
            # a text completion's prompt is reused exactly only: its continuation depends on
            # every character ("The capital of France is" / "… is "), which no meaning shows
            return Lookup(p, key, "miss")
        if not self.embedder.fits(key.query):
            # the embedding would cover only the start of the question: two questions that
            # differ further on would look identical, so only an exact match may serve
            self.count("too_long_for_semantic")
            return Lookup(p, key, "miss")
        if not reads_english(key.query):
            # the guards' word lists and the pair model read English: another language is
            # reused on an exact repeat only (language.reads_english)
            self.count("not_english_for_semantic")
            return Lookup(p, key, "miss")
        if vector is None:
            vector = (await self.embed([key.query]))[0]
        out = Lookup(p, key, "miss", vector=vector, semantic=not stale)
        near = self.index.search(key.scope, vector, self.settings.candidates)
        survivors = self._survivors(key, near, admissible)
        batch = self.settings.pair_candidates if self.verifier.scorer.uses_pair else 1
        while ranked := await self._rank(list(itertools.islice(survivors, batch)), key):
            for meta, similarity, pair in ranked:
                out.similarity, out.pair = similarity, pair
                if self.verifier.scorer.uses_density:
                    out.density = self._density(key.scope, near, meta.key)
                out.verdict = self.verifier.decide(meta.key, similarity, out.density, out.pair)
                if out.verdict is Verdict.SERVE:
                    entry, out.unchecked = await self._entry_if_live(meta, check_live)
                    if entry is None:
                        # revoked or deleted by another process since the change log was
                        # read: the next survivor may still serve
                        self.count("dropped_candidate")
                        continue
                    out.entry, out.status = entry, "hit-semantic"
                elif out.verdict in (Verdict.VERIFY, Verdict.OBSERVE) and not stale:
                    out.candidate = meta
                return out
        return out

    def _admissible(
        self, p: Plan, key: ReuseKey, now: float, *, stale: bool = False
    ) -> Callable[[EntryMeta | None], bool]:
        """Whether an entry may serve ``key`` under plan ``p`` at ``now``: fresh enough, one
        the request could have received (``answer_fits``; a request at temperature 0 is not
        served a sampled answer), and (``stale``) a document of an
        older model version being rebound."""

        def admissible(meta: EntryMeta | None) -> bool:
            if meta is None or not self._fresh(meta, p, now):
                return False
            if not answer_fits(meta.finish_reason, meta.completion_tokens, key.max_tokens):
                return False  # longer than this request allows, or cut shorter than it allows
            if key.greedy and meta.sampled:
                return False  # a sampled answer; greedy decoding would not give it
            return not stale or self.documents.is_stale(meta.document)

        return admissible

    # --- coalescing (flight.py) -----------------------------------------------------------
    def join_flight(self, lookup: Lookup) -> Flight | None:
        """The flight to wait for when an identical request is computing this miss's answer.
        Else None, and a miss whose answer will be stored leads a flight of its own
        (``lookup.flight``), landed by ``remember`` once stored or by ``land``."""
        key = lookup.key
        if (
            key is None
            or lookup.entry is not None
            or lookup.status != "miss"
            or self.settings.coalesce_wait_s <= 0
        ):
            return None
        wait, lookup.flight = self.flights.join((key.exact, key.max_tokens), lead=lookup.plan.store)
        return wait

    def land(self, lookup: Lookup | None) -> None:
        """End the flight ``lookup`` leads, if any: its waiters look up again (idempotent)."""
        if lookup is not None and lookup.flight is not None:
            self.flights.land(lookup.flight)
            lookup.flight = None

    async def after_flight(self, lookup: Lookup) -> Lookup | None:
        """Once the flight ``lookup`` waited for has landed: the answer filed under its exact
        key that fits it, as a ``hit-coalesced`` lookup; None if there is none (the leader
        failed, left or stored nothing that fits: the waiter runs on its own)."""
        key = lookup.key
        assert key is not None
        p = lookup.plan
        hit = await self._exact_hit(p, key, self._admissible(p, key, self.clock.time()))
        if hit is None:
            self.count("coalesced-alone")
            return None
        hit.status = "hit-coalesced"
        self.count("hit-coalesced")
        return hit

    async def _exact_hit(
        self,
        p: Plan,
        key: ReuseKey,
        admissible: Callable[[EntryMeta | None], bool],
        *,
        stale: bool = False,
        check_live: bool = True,
    ) -> Lookup | None:
        """An answer filed under the request's exact key that fits it (``exact.py``): from
        memory, else, on a store whose followers poll, the newest one another process stored
        since the change log was last read. ``check_live``: see ``lookup``."""
        for k in list(self._exact.candidates(key.exact, key.max_tokens)):
            meta = self._meta.get(k)
            if meta is not None and admissible(meta):
                entry, unchecked = await self._entry_if_live(meta, check_live)
                if entry is not None:
                    hit = Lookup(p, key, "hit-exact", entry=entry, similarity=1.0)
                    hit.unchecked = unchecked
                    return hit
        if not stale and not self.store.announces_changes:
            entry = await self._exact_from_store(key.exact)
            if entry is not None and admissible(self._meta.get(entry.key)):
                return Lookup(p, key, "hit-exact", entry=entry, similarity=1.0)
        return None

    def _survivors(
        self, key: ReuseKey, near: list[Neighbour], admissible: Callable[[EntryMeta | None], bool]
    ) -> Iterator[tuple[EntryMeta, float]]:
        """The neighbours that may answer ``key``, nearest first: admissible, above the
        verifier's floor, bound if only bound answers serve, and past the guards (run only
        as far as the caller reads)."""
        for n in near:
            meta = self._meta.get(n.key)
            if not admissible(meta) or meta is None or meta.exact == key.exact:
                continue
            if n.similarity < self.verifier.floor:
                return
            if self.settings.require_bound and meta.document is None:
                continue
            if not compare(key.query, meta.query).ok:
                continue
            yield meta, n.similarity

    async def _rank(
        self, survivors: list[tuple[EntryMeta, float]], key: ReuseKey
    ) -> list[tuple[EntryMeta, float, float | None]]:
        """Survivors with their pair-model scores, best first by the verifier's scorer (the
        pair score, or the blend of it with the cosine). The cross-encoder reads (asked,
        stored) for each; only would-be hits (above the floor, past the guards) pay for it.
        Without a pair scorer: in the index's order, unscored."""
        if not survivors or self.pair_scorer is None or not self.verifier.scorer.uses_pair:
            return [(m, s, None) for m, s in survivors]
        scores = await asyncio.to_thread(
            self.pair_scorer.score_pairs, [(key.query, m.query) for m, _ in survivors]
        )
        rank = self.verifier.scorer.score
        order = sorted(
            range(len(survivors)),
            key=lambda i: -rank(Evidence(survivors[i][1], 0.0, float(scores[i]))),
        )
        return [(survivors[i][0], survivors[i][1], float(scores[i])) for i in order]

    async def _exact_from_store(self, exact: str) -> StoredEntry | None:
        """The newest live entry stored under ``exact`` by another process since this one
        last read the change log, on a store whose followers poll it (SQLite, every
        ``sync_interval_s``): one indexed read before a miss runs the model, so worker
        processes share exact answers at once. (Where changes are announced, PostgreSQL,
        followers are milliseconds behind and a semantic lookup is spared the round trip.)
        The entry is admitted here as the change log would admit it."""
        e = await self.store.get_entry_by_exact(exact)
        if e is None or e.revoked:
            return None
        if e.key not in self._meta:
            self.admit_stored(e)  # whatever embedder made its vector (reembed.py)
            self.count("read_exact")
        return e

    def _density(self, scope: str, near: list[Neighbour], candidate: int) -> float:
        """Mean cosine of the asked question to its nearest stored questions and of the
        candidate to its own (itself excluded), averaged: the crowding that the density
        scorer discounts. One extra index search, for the chosen candidate only."""
        k = self.settings.candidates
        r_asked = sum(n.similarity for n in near[:k]) / max(1, len(near[:k]))
        vec = self.index.vector(candidate)
        if vec is None:
            return r_asked
        around = [n for n in self.index.search(scope, vec, k + 1) if n.key != candidate][:k]
        r_cand = sum(n.similarity for n in around) / len(around) if around else r_asked
        return (r_asked + r_cand) / 2

    async def note_hit(self, lookup: Lookup, asker: str | None = None) -> None:
        if lookup.entry is None or lookup.status == "hit-variant":
            return
        now = self.clock.time()
        meta = self._meta.get(lookup.entry.key)
        if meta is not None:
            meta.hits += 1
            meta.last_used = now
        # The hit count is bookkeeping for eviction, not part of the answer: counted here and
        # written every HIT_FLUSH_S, one statement per entry hit meanwhile, so a popular
        # answer's row is not updated (and locked) by every hit of every process.
        n, _ = self._hits.get(lookup.entry.key, (0, now))
        self._hits[lookup.entry.key] = (n + 1, now)
        if self._hit_flush is None:
            self._hit_flush = asyncio.get_running_loop().create_task(self._flush_hits_later())
        bound_already = meta is not None and meta.document is not None
        if (
            asker is not None
            and lookup.key is not None
            and lookup.status != "stale"
            and not bound_already  # a bound answer's asker count is frozen in its document
        ):
            bound = await self.documents.register(lookup.entry.key, asker, lookup.key.query)
            if bound is not None:
                lookup.entry.document_id = bound

    # --- after generation -----------------------------------------------------------------
    async def remember(
        self,
        lookup: Lookup,
        completion: Completion,
        *,
        tenant: str,
        model: str,
        model_version: str,
        cost_wh: float,
        cost_gco2: float,
        cost_method: str = "estimate",
        request: GenerationRequest | None = None,
        asker: str | None = None,
    ) -> str | None:
        """Store a fresh answer (if the plan allows); returns its public id."""
        key = lookup.key
        if key is None or not lookup.plan.store or not completion.text.strip():
            return None
        if completion.finish_reason not in ("stop", "length"):
            return None
        vector = lookup.vector
        if vector is None and not key.verbatim and self.by_meaning(key.query):
            # (else matched exactly only)
            vector = (await self.embed([key.query]))[0]
        now = self.clock.time()
        entry_key = await self.store.new_entry_key()
        digest = hashlib.sha256(
            f"{key.scope}\n{key.exact}\n{completion.text}\n{now!r}".encode()
        ).hexdigest()
        entry = StoredEntry(
            key=entry_key,
            id="ans_" + digest[:24],
            scope=key.scope,
            exact=key.exact,
            query=key.query,
            answer=completion.text,
            finish_reason=completion.finish_reason,
            prompt_tokens=completion.usage.prompt_tokens,
            completion_tokens=filed_tokens(completion, key.max_tokens),
            model=model,
            model_version=model_version,
            tenant=tenant,
            created=now,
            cost_wh=cost_wh,
            cost_gco2=cost_gco2,
            vector=vector_bytes(vector),
            embedder=self.embedder.name,
            scope_doc=json.dumps(key.scope_doc, sort_keys=True, separators=(",", ":")),
            request=request_json(request) if request is not None else None,
            cost_method=cost_method,
        )
        slot = slot_of(entry.finish_reason, entry.completion_tokens)
        displaced = self._exact.holder(key.exact, slot)
        await self.store.put_entry(entry)
        self.admit(entry, vector)
        self.land(lookup)  # identical requests waiting for this answer are served it now
        if displaced is not None and self._exact.holder(key.exact, slot) == entry_key:
            # the answer this one replaced in its slot: no exact lookup reaches it any more
            old = self._meta.get(displaced)
            if (
                old is not None
                and old.exact == key.exact
                and not old.pinned
                and displaced not in self._variants
            ):
                await self.forget([displaced])
                self.count("replaced")
        lookup.stored_id = entry.id
        if asker is not None:
            bound = await self.documents.register(entry_key, asker, key.query)
            if bound is not None:
                lookup.stored_id = bound
        if len(self._meta) > self.settings.max_entries:
            await self.evict()
        return entry.id

    async def _flush_hits_later(self) -> None:
        await asyncio.sleep(HIT_FLUSH_S)
        self._hit_flush = None
        await self.flush_hits()

    async def flush_hits(self) -> None:
        """Write the hits counted since the last flush (at most HIT_FLUSH_S old; a process
        killed loses these counts, which only steer eviction)."""
        pending, self._hits = self._hits, {}
        for key, (n, ts) in pending.items():
            try:
                await self.store.note_hit(key, ts, n)
            except Exception:  # bookkeeping: never worth failing for
                log.exception("reuse: writing hit counts failed")

    async def drain(self) -> None:
        if self._hit_flush is not None:
            self._hit_flush.cancel()
            self._hit_flush = None
        await self.flush_hits()
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    # --- eviction -------------------------------------------------------------------------
    def value(self, meta: EntryMeta, now: float) -> float:
        """Energy saved per byte kept: cost × (1 + reuse count) × recency decay / size."""
        half_life = self.settings.recency_half_life_s
        recency = math.exp(-max(0.0, now - meta.last_used) * math.log(2) / half_life)
        return meta.cost_wh * (1 + meta.hits) * recency / max(1, meta.size)

    async def evict(self) -> list[int]:
        now = self.clock.time()
        excess = len(self._meta) - self.settings.max_entries
        if excess <= 0:
            return []
        batch = max(excess, self.settings.max_entries // 100)
        candidates = sorted(
            (m for m in self._meta.values() if not m.pinned), key=lambda m: self.value(m, now)
        )
        victims = [m.key for m in candidates[:batch]]
        await self.forget(victims)
        self._count_n("evicted", len(victims))
        return victims

    def _count_n(self, name: str, n: int) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    async def forget(self, keys: list[int], delete: bool = True) -> None:
        with self._lock:
            for k in keys:
                meta = self._meta.pop(k, None)
                if meta is None:
                    continue
                self._by_id.pop(meta.id, None)
                if meta.document:
                    self._by_id.pop(meta.document, None)
                self._exact.remove(meta.exact, k)
                for exact in self._variants.pop(k, ()):
                    self._exact.remove(exact, k)
        self.documents.forget(keys)
        for k in keys:
            self._answers.pop(k, None)
            self._unembedded.pop(k, None)
            self.index.remove(k)
            self.verifier.forget_entry(k)
        if delete:
            await self.store.delete_entries(keys)

    # --- reporting ------------------------------------------------------------------------
    def stats(self, tenant: str | None = None) -> dict[str, Any]:
        """Reuse statistics (the body of ``GET /v1/boundgate/stats``'s ``reuse``).

        With ``tenant`` (a non-admin key), counts are that tenant's own (``entries``,
        ``scopes``) and what every request is subject to is the deployment's (``error_bound``,
        ``threshold``, what decided it, the scorer, the live ``error_rate_estimate`` and its
        ``error_rate_ci``); what counts other tenants' traffic (labels by source, semantic
        lookups, observations, hit precision, the prior's live weight, outcome counters,
        index load) is the operator's and left out. Without it: everything."""
        est = self.verifier.estimate()
        if tenant is None:
            entries, scopes = len(self._meta), self.index.scopes()
        else:
            mine = [m for m in list(self._meta.values()) if m.tenant == tenant]
            entries, scopes = len(mine), len({m.scope for m in mine})
        out = {
            "entries": entries,
            "scopes": scopes,
            "index_load": asdict(self.index_load) if self.index_load is not None else None,
            "embedder": self.embedder.name,
            # stored answers matched exactly only until they have this embedder's vector
            "vectors_pending": len(self._unembedded),
            "error_bound": self.verifier.delta,
            "threshold": est.threshold,
            "scorer": self.verifier.scorer.name,
            "scorer_parameters": self.verifier.scorer.describe(),
            # the scorer whose threshold is in force: the scorer's, or the alternative's when
            # the gateway's own labels prove it serves more (reuse.alternative_scorer)
            "threshold_scorer": self.verifier.active_scorer.name,
            "pair_model": self.pair_scorer.name if self.pair_scorer is not None else None,
            "prior": (
                {
                    "source": self.verifier.prior.source,
                    "pairs": self.verifier.prior.pairs,
                    # what the whole prior counts as now, in labelled pairs
                    "effective_pairs": est.prior_weight * self.verifier.prior.pairs,
                    "pairs_above_threshold": est.prior_pairs_above,
                }
                if self.verifier.prior is not None
                else None
            ),
            "threshold_decided_by": est.decided_by,
            "error_rate_estimate": est.error_rate,
            "error_rate_ci": [est.error_low, est.error_high],
            "confidence": self.verifier.confidence,
            "hit_precision": est.hit_precision,
            "observations": est.observations,
            "observations_above_threshold": est.observations_above,
            "min_observations": self.verifier.min_observations,
            "observations_by_source": self.verifier.by_source(),
            "semantic_lookups": est.lookups,
            "outcomes": dict(self.counters),
        }
        if tenant is not None:
            for key in TENANT_HIDDEN_STATS:
                del out[key]
            prior = self.verifier.prior
            if prior is not None:  # its live weight moves with every tenant's labels
                out["prior"] = {"source": prior.source, "pairs": prior.pairs}
        return out
